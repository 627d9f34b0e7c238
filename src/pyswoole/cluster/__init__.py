"""Topics (rooms) across the workers of one machine, and across machines on Redis.

:mod:`.topics` keeps a process's subscriptions and the shared per-topic worker map;
``pyswoole.server.topics`` is the server's surface (``subscribe``, ``publish``,
``push_user``, ``history``...); :mod:`.backend` is the interface a broker implements (and
the ``cluster`` setting's check) and :mod:`.redis_backend` the Redis one (one server, a
Redis Cluster or a Sentinel group).
"""
