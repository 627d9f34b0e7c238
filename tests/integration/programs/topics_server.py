"""A WebSocket server whose clients drive topics, users and the cluster, for
tests/integration/test_topics.py and test_cluster.py.

    python tests/integration/programs/topics_server.py --port 0 --workers 2
        [--mode base|process] [--cluster redis://127.0.0.1:PORT/0] [--node-id ID]
        [--ttl SECONDS] [--compress] [--buffer SOCKET_BUFFER_SIZE] [--task-workers N]
        [--history MAXLEN]

Standard output: ``READY <port>``, ``workerStart <id> <pid> worker`` and ``close <fd>``.
Text messages are commands; replies are JSON ``{"re": <command>, ...}``; published and
pushed messages are passed through as they are (never JSON):

    whoami                   {"worker", "pid", "fd"}
    sub:<topic>[:<fd>]       subscribe(fd or this client, topic) -> {"ok"}
    unsub:<topic>[:<fd>]     unsubscribe(...) -> {"ok"}
    unsuball[:<fd>]          unsubscribe_all(...) -> {"n"}
    subpub:<topic>:<fd>:<x>  subscribe(fd, topic) then publish(topic, x) -> {"ok", "n"}
    pub:<topic>:<text>       publish(topic, text) -> {"n"}
    pubx:<topic>:<text>      the same with exclude_fd = this client
    pubn:<topic>:<n>:<tag>   publish <tag>-0 .. <tag>-(n-1) in order -> {"n": sum}
    pubbig:<topic>:<n>:<size>  publish n messages of size bytes -> {"n": sum}
    thread:<topic>:<text>    subscribe(fd) and publish from another thread -> {"ok", "n"}
    taskpub:<topic>:<text>   publish from a task worker (--task-workers 1) -> {"n"}
    info:<topic>             {"subscribers", "count", "topics": topics(this fd)}
    bind:<uid>               bind(this fd, uid) -> {"ok"}
    user:<uid>:<text>        push_user(uid, text) -> {"n"}
    online:<uid>             {"online": await online(uid), "count": await online_count()}
    bcast:<text>             broadcast(text, cluster=True) -> {"n"}
    hist:<topic>:<n>[:<id>]  {"history": await history(topic, n, after=id)} ([id, data])
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from events import emit, reply

from pyswoole import SWOOLE_BASE, SWOOLE_PROCESS, WebSocketServer
from pyswoole.server import Frame


def build(args: argparse.Namespace) -> WebSocketServer:
    mode = SWOOLE_PROCESS if args.mode == "process" else SWOOLE_BASE
    server = WebSocketServer("127.0.0.1", args.port, mode)
    settings: dict[str, Any] = {"worker_num": args.workers, "log_level": 2}
    if args.cluster:
        cluster: dict[str, Any] = {"backend": args.cluster, "presence_ttl": args.ttl}
        if args.node_id:
            cluster["node_id"] = args.node_id
        if args.history:
            cluster["history"] = {"maxlen": args.history}
        settings["cluster"] = cluster
    if args.compress:
        settings["websocket_compression"] = True
    if args.buffer:
        settings["socket_buffer_size"] = args.buffer
    if args.task_workers:
        settings["task_worker_num"] = args.task_workers

        @server.on("task")
        def on_task(server: WebSocketServer, task_id: int, src: int, data: Any) -> int:
            return server.publish(data[0], data[1])  # from a task worker

        @server.on("finish")
        def on_finish(server: WebSocketServer, task_id: int, data: Any) -> None:
            pass

    server.set(settings)

    @server.on("start")
    def on_start(server: WebSocketServer) -> None:
        emit("READY", server.port)

    @server.on("workerStart")
    def on_worker_start(server: WebSocketServer, worker_id: int) -> None:
        emit("workerStart", worker_id, os.getpid(), "worker")

    @server.on("close")
    def on_close(server: WebSocketServer, fd: int) -> None:
        emit("close", fd)

    @server.on("message")
    async def on_message(server: WebSocketServer, frame: Frame) -> None:
        fd = frame.fd
        text = frame.data if isinstance(frame.data, str) else frame.data.decode()
        command, _, rest = text.partition(":")
        if command == "whoami":
            reply(server, fd, command, worker=server.worker_id, pid=os.getpid(), fd=fd)
        elif command in ("sub", "unsub"):
            topic, _, target = rest.partition(":")
            call = server.subscribe if command == "sub" else server.unsubscribe
            reply(server, fd, command, ok=call(int(target or fd), topic))
        elif command == "subpub":  # subscribe another fd, then publish at once
            topic, target, data = rest.split(":", 2)
            ok = server.subscribe(int(target), topic)
            reply(server, fd, command, ok=ok, n=server.publish(topic, data))
        elif command == "unsuball":
            reply(server, fd, command, n=server.unsubscribe_all(int(rest or fd)))
        elif command in ("pub", "pubx"):
            topic, _, data = rest.partition(":")
            exclude = fd if command == "pubx" else None
            reply(server, fd, command, n=server.publish(topic, data, exclude_fd=exclude))
        elif command == "pubn":
            topic, count, tag = rest.split(":")
            n = sum(server.publish(topic, f"{tag}-{i}") for i in range(int(count)))
            reply(server, fd, command, n=n)
        elif command == "thread":  # subscribe this fd and publish from another thread
            topic, _, data = rest.partition(":")
            ok = await asyncio.to_thread(server.subscribe, fd, topic)
            n = await asyncio.to_thread(server.publish, topic, data)
            reply(server, fd, command, ok=ok, n=n)
        elif command == "taskpub":  # publish from a task worker
            topic, _, data = rest.partition(":")
            n = await server.task_async((topic, data), 5.0)
            reply(server, fd, command, n=n)
        elif command == "pubbig":  # <topic>:<count>:<size>
            topic, count, size = rest.split(":")
            n = sum(server.publish(topic, "x" * int(size)) for _ in range(int(count)))
            reply(server, fd, command, n=n)
        elif command == "info":
            reply(
                server,
                fd,
                command,
                subscribers=server.subscribers(rest),
                count=server.topic_count(rest),
                topics=server.topics(fd),
            )
        elif command == "bind":
            reply(server, fd, command, ok=server.bind(fd, int(rest)))
        elif command == "user":
            uid, _, data = rest.partition(":")
            reply(server, fd, command, n=server.push_user(int(uid), data))
        elif command == "online":
            online = await server.online(int(rest))
            reply(server, fd, command, online=online, count=await server.online_count())
        elif command == "bcast":
            reply(server, fd, command, n=server.broadcast(rest, cluster=True))
        elif command == "hist":
            topic, count, *after = rest.split(":", 2)
            kept = await server.history(topic, int(count), after[0] if after else None)
            reply(server, fd, command, history=kept)
        else:
            server.push(fd, json.dumps({"re": "?", "text": text}))

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=("base", "process"), default="base")
    parser.add_argument("--cluster", default="")
    parser.add_argument("--node-id", default="")
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("--buffer", type=int, default=0, help="socket_buffer_size")
    parser.add_argument("--task-workers", type=int, default=0)
    parser.add_argument("--history", type=int, default=0, help="cluster history maxlen")
    build(parser.parse_args()).start()


if __name__ == "__main__":
    main()
