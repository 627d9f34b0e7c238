"""What each scenario asks of wsload, and which numbers it reports.

A-G are described in bench/README.md. ``Bz`` and ``Fz`` are B and F against a server started
with ``--compression`` (only for servers that implement permessage-deflate); they appear as
their own "+deflate" table row, in the B and F columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Load shapes; the defaults are the real benchmark, SMOKE is a seconds-long check."""

    throughput_conns: int = 100
    pipeline_depth: int = 16
    large_conns: int = 10
    large_size: int = 64 * 1024
    connect_concurrency: int = 50
    idle_conns: int = 10_000
    fanout_receivers: int = 1_000
    # msgs/s from the sender: 500k deliveries/s offered, over 2x what every peer delivers here
    # (pyswoole, which sends a read's broadcasts to a client at once, delivers all of it)
    fanout_rate: int = 500
    message_size: int = 32


SMOKE = Sizes(
    throughput_conns=10,
    pipeline_depth=4,
    large_conns=2,
    connect_concurrency=10,
    idle_conns=200,
    fanout_receivers=50,
    fanout_rate=200,
)


@dataclass(frozen=True)
class Metric:
    """One reported number: the wsload JSON field (or a harness-computed one)."""

    field: str
    header: str


@dataclass(frozen=True)
class Scenario:
    key: str
    column: str  # the table column group: the key without the "z" suffix
    title: str
    mode: str
    metrics: tuple[Metric, ...]
    compression: bool = False

    @property
    def rate_field(self) -> str:
        """The wsload field counting operations per second (for CPU per operation)."""
        return {"D": "msgs_per_s", "E": "handshakes_per_s", "G": "deliveries_per_s"}.get(
            self.column, "msgs_per_s"
        )

    @property
    def fanout(self) -> bool:
        return self.mode == "fanout"

    @property
    def memory(self) -> bool:
        return self.mode == "idle"

    def wsload_args(self, sizes: Sizes) -> list[str]:
        """Mode-specific wsload options (URL, duration and warmup are added by the caller)."""
        size = ["-s", str(sizes.message_size)]
        by_column = {
            "A": ["-c", "1", "-k", "1", *size],
            "B": ["-c", str(sizes.throughput_conns), "-k", "1", *size],
            "C": ["-c", str(sizes.throughput_conns), "-k", str(sizes.pipeline_depth), *size],
            "D": ["-c", str(sizes.large_conns), "-k", "1", "-b", "-s", str(sizes.large_size)],
            "E": ["connect", "-c", str(sizes.connect_concurrency)],
            "F": ["idle", "-c", str(sizes.idle_conns)],
            "G": [
                "fanout",
                "-c",
                str(sizes.fanout_receivers),
                "-r",
                str(sizes.fanout_rate),
                *size,
            ],
        }
        return by_column[self.column]

    def connections(self, sizes: Sizes) -> int:
        """How many connections wsload holds at once (to size the timeout)."""
        return {
            "A": 1,
            "B": sizes.throughput_conns,
            "C": sizes.throughput_conns,
            "D": sizes.large_conns,
            "E": sizes.connect_concurrency,
            "F": sizes.idle_conns,
            "G": sizes.fanout_receivers + 1,
        }[self.column]


MSGS = Metric("msgs_per_s", "msg/s")
KIB_PER_CONN = Metric("kib_per_conn", "KiB/conn")

SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "A",
            "A",
            "latency: 1 conn, 32 B text, 1 in flight",
            "echo",
            (Metric("p50_us", "p50 µs"), Metric("p99_us", "p99 µs")),
        ),
        Scenario("B", "B", "throughput: 100 conns, 32 B, 1 in flight", "echo", (MSGS,)),
        Scenario("C", "C", "pipelined: 100 conns, 32 B, 16 in flight", "echo", (MSGS,)),
        Scenario(
            "D", "D", "large: 10 conns, 64 KiB binary", "echo", (Metric("mib_per_s", "MiB/s"),)
        ),
        Scenario(
            "E",
            "E",
            "connect: 50 concurrent upgrade+close loops",
            "connect",
            (Metric("handshakes_per_s", "handshakes/s"),),
        ),
        Scenario("F", "F", "memory: 10,000 idle conns", "idle", (KIB_PER_CONN,)),
        Scenario(
            "G",
            "G",
            "fanout: 1,000 receivers",
            "fanout",
            (Metric("deliveries_per_s", "deliveries/s"),),
        ),
        Scenario("Bz", "B", "B with permessage-deflate enabled", "echo", (MSGS,), True),
        Scenario("Fz", "F", "F with permessage-deflate enabled", "idle", (KIB_PER_CONN,), True),
    )
}
