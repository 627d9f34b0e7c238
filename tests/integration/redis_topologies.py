"""A real 3-master Redis Cluster and a real Sentinel group, from the ``redis-server`` binary
(:mod:`.redis_server`), on free ports, no persistence, for the cluster tests; never mocks.

The cluster is built the way ``redis-cli --cluster create`` does it, but without its fixed
one-second waits: each node takes a third of the 16384 slots (``CLUSTER ADDSLOTSRANGE``)
and a distinct config epoch, the first meets the others, and the fixture waits until every
node says ``cluster_state:ok`` (gossip; well under a second here).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.integration.redis_server import RedisServer, free_port, redis_binary

SLOTS = 16384
SETTLE_TIMEOUT = 10.0
SERVICE = "mymaster"


class RedisClusterNodes:
    """The masters of a running Redis Cluster; ``url`` is pyswoole's form for it."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:2])
        return f"redis+cluster://{seeds}"


def _client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


def _wait_until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"{what} within {SETTLE_TIMEOUT} s"
        time.sleep(0.02)  # polling interval of a condition


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisClusterNodes]:
    binary = redis_binary()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rcluster-")))
        nodes, buses = [], []
        for _ in range(masters):
            node = RedisServer(binary)
            buses.append(free_port())  # (port + 10000 may be past 65535)
            config = folder / f"nodes-{node.port}.conf"
            node.tail = [
                "--dir",
                str(folder),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(buses[-1]),
                "--cluster-config-file",
                str(config),
                "--cluster-node-timeout",
                "2000",
            ]
            stack.callback(node.stop)
            node.start()
            nodes.append(node)
        clients = [_client(node.port) for node in nodes]
        for client in clients:
            stack.callback(client.close)
        for index, client in enumerate(clients):
            first, last = SLOTS * index // masters, SLOTS * (index + 1) // masters - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        for node, bus in zip(nodes[1:], buses[1:], strict=True):
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)

        def settled() -> bool:
            for client in clients:
                info = client.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text or f"cluster_known_nodes:{masters}" not in text:
                    return False
            return True

        _wait_until("the cluster settles", settled)  # (Redis: >= 2 s after start)
        yield RedisClusterNodes(nodes)


class RedisSentinelGroup:
    """A master, maybe a replica, and one Sentinel that monitors them (quorum 1) as
    ``mymaster``; with the replica, stopping the master makes the Sentinel promote it."""

    def __init__(
        self, master: RedisServer, sentinel: RedisServer, replica: RedisServer | None
    ) -> None:
        self.master = master
        self.sentinel = sentinel
        self.replica = replica

    def master_port(self) -> int:
        """The master's port, as the Sentinel says now."""
        with contextlib.closing(_client(self.sentinel.port)) as client:
            address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(address[1])

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}/0"


@contextlib.contextmanager
def redis_sentinel(replica: bool = False) -> Iterator[RedisSentinelGroup]:
    binary = redis_binary()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rsentinel-")))
        master = RedisServer(binary, tail=["--repl-diskless-sync-delay", "0", "--dir", str(folder)])
        stack.callback(master.stop)
        master.start()
        second = None
        if replica:  # synced before the Sentinel starts: it learns of it at once
            second = RedisServer(  # (--dir: a replica's full sync writes an RDB file there)
                binary, tail=["--replicaof", "127.0.0.1", str(master.port), "--dir", str(folder)]
            )
            stack.callback(second.stop)
            second.start()
            with contextlib.closing(_client(second.port)) as client:
                _wait_until(
                    "the replica syncs",
                    lambda: client.info("replication").get("master_link_status") == "up",
                )
        config = folder / "sentinel.conf"  # (the Sentinel rewrites it: its own copy)
        config.write_text(
            f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        sentinel = RedisServer(
            binary,
            head=[str(config), "--sentinel"],
            tail=["--dir", str(folder)],
            ready=f"+monitor master {SERVICE}",
        )
        stack.callback(sentinel.stop)
        sentinel.start()
        if second is not None:
            with contextlib.closing(_client(sentinel.port)) as client:
                _wait_until(
                    "the Sentinel knows the replica",
                    lambda: bool(client.execute_command("SENTINEL", "REPLICAS", SERVICE)),
                )
        yield RedisSentinelGroup(master, sentinel, second)
