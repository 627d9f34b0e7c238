"""What each scenario asks of wsload, and which numbers it reports.

All scenarios are described in bench/README.md. A-G (the "main" group) are the first table;
the others ("Performance II") each need a wsload feature that :mod:`harness.features`
detects from ``wsload -h``, and get a table of their own:

* deflate: ``Bz`` (100 connections echoing compressed JSON chat messages), ``Fz`` (F with
  permessage-deflate negotiated), ``Gz`` (compressed JSON broadcast to 1,000 receivers);
  only for servers that implement permessage-deflate, the others show "n/a: no
  permessage-deflate".
* tls: ``Bw`` and ``Ew``, B and E over ``wss://`` (a certificate the bench makes).
* latency: ``H50``/``H90``, open-loop echo on 1,000 connections at 50 % and 90 % of a
  reference server's B throughput in the same run, the same rate for every server
  (:mod:`harness.openloop`; ``--scenarios H`` selects both).
* scale: ``F100k``, 100,000 idle receivers from 40 source addresses, then broadcasts to all.
* scale_procs: ``F100kx``, F100k across processes (``--scale-procs N``, which selects it in
  place of F100k): a pyswoole server with ``worker_num`` W and N receive-only wsload
  processes (:mod:`harness.scale`), for machines whose per-process file limit is too low.
"""

from __future__ import annotations

from collections.abc import Callable
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
    # Gz: JSON messages/s broadcast (100-2,000 B each, ~1 KB on average): 100k deliveries/s
    deflate_rate: int = 100
    latency_conns: int = 1_000  # H
    scale_conns: int = 100_000  # F100k
    scale_sources: str = "127.0.0.1-127.0.0.40"  # 2,500 connections per source address
    scale_rate: int = 1  # F100k: broadcasts/s, each to every connection
    scale_procs: int = 0  # F100kx: receiver wsload processes (0: F100k in one process)
    scale_workers: int = 8  # F100kx: the server's worker_num (SWOOLE_BASE)


SMOKE = Sizes(
    throughput_conns=10,
    pipeline_depth=4,
    large_conns=2,
    connect_concurrency=10,
    idle_conns=200,
    fanout_receivers=50,
    fanout_rate=200,
    deflate_rate=20,
    latency_conns=20,
    scale_conns=300,
    scale_sources="127.0.0.1-127.0.0.2",
    scale_rate=2,
)


@dataclass(frozen=True)
class Metric:
    """One reported number: the wsload JSON field (or a harness-computed one)."""

    field: str
    header: str
    lower_is_better: bool = False


Args = Callable[[Sizes, int], list[str]]  # (sizes, open-loop rate) -> wsload options


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    mode: str
    metrics: tuple[Metric, ...]
    args: Args
    connections: Callable[[Sizes], int]  # connections wsload holds at once (timeouts, RSS)
    group: str = "main"  # which table the scenario's columns go to
    compression: bool = False  # server started with --compression, wsload offers deflate
    tls: bool = False  # wss://: the server gets the bench's certificate
    load: float = 0.0  # H: the offered rate as a fraction of the reference's B msgs/s
    needs: tuple[str, ...] = ()  # wsload features (harness.features) the scenario uses
    rate_field: str = "msgs_per_s"  # operations per second, for CPU per operation
    unit: str = ""  # CPU per operation is reported per this ("": not reported)
    rss_active: bool = False  # report server RSS per connection while the load runs

    @property
    def fanout(self) -> bool:
        return self.mode == "fanout"

    @property
    def memory(self) -> bool:
        """RSS is sampled at wsload's ``ready`` line (idle and the F100k fanout)."""
        return self.mode == "idle" or self.key == "F100k"

    def wsload_args(self, sizes: Sizes, rate: int = 0) -> list[str]:
        """Mode-specific wsload options (URL, duration and warmup are added by the caller)."""
        return self.args(sizes, rate)


MSGS = Metric("msgs_per_s", "msg/s")
KIB_PER_CONN = Metric("kib_per_conn", "KiB/conn", True)
DELIVERIES = Metric("deliveries_per_s", "deliveries/s")
HANDSHAKES = Metric("handshakes_per_s", "handshakes/s")
#: server bytes on the wire / payload bytes, as wsload received them (below 1: compressed)
RATIO = Metric("ratio_recv", "ratio", True)
#: harness-computed: server CPU µs per operation and RSS per connection under load
CPU_METRIC = "server_cpu_us"
ACTIVE_RSS_METRIC = "active_kib_per_conn"
#: H: wsload's own user + system CPU in its measured window, % of its one core
CLIENT_CPU_METRIC = "client_cpu_pct"


def _size(sizes: Sizes) -> list[str]:
    return ["-s", str(sizes.message_size)]


def _latency(load: float) -> tuple[Metric, ...]:
    pct = f"{load * 100:.0f}%"
    return (
        Metric("p50_us", f"{pct} p50 µs", True),
        Metric("p99_us", f"{pct} p99 µs", True),
        Metric("p999_us", f"{pct} p99.9 µs", True),
        Metric("max_us", f"{pct} max µs", True),
        Metric("msgs_per_s", f"{pct} echoed msg/s"),  # offered/achieved_rate: the JSON
        # report.py notes it from 85 %: 1,000 open-loop connections on one core can be the
        # run's limit
        Metric(CLIENT_CPU_METRIC, f"{pct} client CPU %", True),
    )


def _throughput(s: Sizes, r: int) -> list[str]:
    return ["-c", str(s.throughput_conns), "-k", "1", *_size(s)]


def _connect(s: Sizes, r: int) -> list[str]:
    return ["connect", "-c", str(s.connect_concurrency)]


def _open_loop(s: Sizes, rate: int) -> list[str]:
    return ["-c", str(s.latency_conns), "-r", str(rate), *_size(s)]


_DEFLATE = ("deflate", "json")
_ALL: tuple[Scenario, ...] = (
    Scenario(
        "A",
        "latency: 1 conn, 32 B text, 1 in flight",
        "echo",
        (Metric("p50_us", "p50 µs", True), Metric("p99_us", "p99 µs", True)),
        lambda s, r: ["-c", "1", "-k", "1", *_size(s)],
        lambda s: 1,
    ),
    Scenario(
        "B",
        "throughput: 100 conns, 32 B, 1 in flight",
        "echo",
        (MSGS,),
        _throughput,
        lambda s: s.throughput_conns,
        unit="msg",
    ),
    Scenario(
        "C",
        "pipelined: 100 conns, 32 B, 16 in flight",
        "echo",
        (MSGS,),
        lambda s, r: ["-c", str(s.throughput_conns), "-k", str(s.pipeline_depth), *_size(s)],
        lambda s: s.throughput_conns,
        unit="msg",
    ),
    Scenario(
        "D",
        "large: 10 conns, 64 KiB binary",
        "echo",
        (Metric("mib_per_s", "MiB/s"),),
        lambda s, r: ["-c", str(s.large_conns), "-k", "1", "-b", "-s", str(s.large_size)],
        lambda s: s.large_conns,
        unit="64 KiB msg",
    ),
    Scenario(
        "E",
        "connect: 50 concurrent upgrade+close loops",
        "connect",
        (HANDSHAKES,),
        _connect,
        lambda s: s.connect_concurrency,
        rate_field="handshakes_per_s",
        unit="handshake",
    ),
    Scenario(
        "F",
        "memory: 10,000 idle conns",
        "idle",
        (KIB_PER_CONN,),
        lambda s, r: ["idle", "-c", str(s.idle_conns)],
        lambda s: s.idle_conns,
    ),
    Scenario(
        "G",
        "fanout: 1,000 receivers",
        "fanout",
        (DELIVERIES,),
        lambda s, r: [
            "fanout",
            *("-c", str(s.fanout_receivers), "-r", str(s.fanout_rate)),
            *_size(s),
        ],
        lambda s: s.fanout_receivers + 1,
        rate_field="deliveries_per_s",
        unit="delivery",
    ),
    Scenario(
        "Bz",
        "deflate: 100 conns echo JSON chat messages (100-2,000 B), compressed both ways",
        "echo",
        (MSGS, RATIO),
        lambda s, r: ["-c", str(s.throughput_conns), "-k", "1", "-z", "-P", "json"],
        lambda s: s.throughput_conns,
        group="deflate",
        compression=True,
        needs=_DEFLATE,
        unit="msg",
        rss_active=True,
    ),
    Scenario(
        "Fz",
        "deflate: F with permessage-deflate negotiated",
        "idle",
        (KIB_PER_CONN,),
        lambda s, r: ["idle", "-c", str(s.idle_conns), "-z"],
        lambda s: s.idle_conns,
        group="deflate",
        compression=True,
        needs=("deflate",),
    ),
    Scenario(
        "Gz",
        "deflate: JSON broadcast to 1,000 compressed receivers",
        "fanout",
        (DELIVERIES, RATIO),
        lambda s, r: [
            "fanout",
            *("-c", str(s.fanout_receivers), "-r", str(s.deflate_rate)),
            *("-z", "-P", "json"),
        ],
        lambda s: s.fanout_receivers + 1,
        group="deflate",
        compression=True,
        needs=_DEFLATE,
        rate_field="deliveries_per_s",
        unit="delivery",
        rss_active=True,
    ),
    Scenario(
        "Bw",
        "TLS: B over wss://",
        "echo",
        (MSGS,),
        _throughput,
        lambda s: s.throughput_conns,
        group="tls",
        tls=True,
        needs=("tls",),
        unit="msg",
        rss_active=True,
    ),
    Scenario(
        "Ew",
        "TLS: E over wss:// (full TLS handshake per connection)",
        "connect",
        (HANDSHAKES,),
        _connect,
        lambda s: s.connect_concurrency,
        group="tls",
        tls=True,
        needs=("tls",),
        rate_field="handshakes_per_s",
        unit="handshake",
    ),
    Scenario(
        "H50",
        "open-loop latency: 1,000 conns, 32 B, at 50% of the reference's B msg/s",
        "echo",
        _latency(0.5),
        _open_loop,
        lambda s: s.latency_conns,
        group="latency",
        load=0.5,
        needs=("echo_rate",),
        unit="msg",
        rss_active=True,
    ),
    Scenario(
        "H90",
        "open-loop latency: 1,000 conns, 32 B, at 90% of the reference's B msg/s",
        "echo",
        _latency(0.9),
        _open_loop,
        lambda s: s.latency_conns,
        group="latency",
        load=0.9,
        needs=("echo_rate",),
        unit="msg",
        rss_active=True,
    ),
    Scenario(
        "F100k",
        "scale: 100,000 idle conns from 40 source addresses, then broadcasts to all",
        "fanout",
        (
            KIB_PER_CONN,
            Metric("accept_s", "accept all s", True),
            # receivers / last arrival: how fast one broadcast reaches everyone (the
            # slowest one); wsload's deliveries_per_s is only the offered 1/s x receivers
            Metric("broadcast_deliveries_per_s", "deliveries/s in a broadcast"),
            Metric("last_arrival_ms", "last arrival ms", True),
            Metric("established_receivers", "conns"),  # (--scale-conns)
        ),
        lambda s, r: [
            "fanout",
            *("-c", str(s.scale_conns), "-B", s.scale_sources, "-r", str(s.scale_rate)),
            *_size(s),
        ],
        lambda s: s.scale_conns + 1,
        group="scale",
        needs=("sources",),
        rate_field="deliveries_per_s",
        unit="delivery",
    ),
)

#: F100k across processes (harness.scale), selected by ``--scale-procs N`` in place of
#: F100k; not in SCENARIOS (``--scenarios`` and the default run do not include it)
SCALE_PROCS = Scenario(
    "F100kx",
    "scale across processes: worker_num W, N receive-only wsload processes, one sender",
    "fanout",
    (
        Metric("established", "conns"),
        Metric("accept_s", "accept all s", True),
        KIB_PER_CONN,
        Metric("pss_kib_per_conn", "PSS KiB/conn", True),
        Metric("broadcast_deliveries_per_s", "deliveries/s in a broadcast"),
        Metric("last_arrival_ms", "last arrival ms (median broadcast)", True),
        Metric("last_arrival_max_ms", "last arrival ms (slowest)", True),
        Metric("worker_conns_min", "conns/worker min"),
        Metric("worker_conns_max", "conns/worker max", True),
        Metric("server_connections", "len(connections)"),
        Metric("iter_ms", "iterate connections ms", True),
    ),
    lambda s, r: [],  # harness.scale builds each process's command line
    lambda s: s.scale_conns + 2,  # receivers, the sender's receiver and the sender
    group="scale_procs",
    needs=("sources", "clock_monotonic"),
    rate_field="deliveries_per_s",
    unit="delivery",
)

SCENARIOS: dict[str, Scenario] = {s.key: s for s in _ALL}
#: names --scenarios also accepts, each standing for several scenarios
ALIASES: dict[str, tuple[str, ...]] = {"H": ("H50", "H90")}
GROUPS: dict[str, str] = {
    "main": "",
    "deflate": "permessage-deflate negotiated (wsload -z; JSON chat messages, -P json)",
    "tls": "TLS (wss://, the bench's self-signed P-256 certificate)",
    "latency": "open-loop latency (wsload -r, from the scheduled send time)",
    "scale": "100,000 connections (wsload -B source ranges)",
    "scale_procs": "100,000 connections across processes (server worker_num W, N wsload "
    "receiver processes; --scale-procs)",
}


def expand(keys: list[str]) -> list[Scenario]:
    """Scenarios for ``--scenarios`` names (aliases expanded), in SCENARIOS order, once each."""
    wanted = {k for key in keys for k in ALIASES.get(key, (key,))}
    return [scenario for key, scenario in SCENARIOS.items() if key in wanted]
