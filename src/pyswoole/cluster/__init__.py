"""Topics (rooms) across the workers of one machine, and across machines on Redis.

:mod:`.topics` keeps a process's subscriptions and the shared per-topic worker map;
:mod:`.api` is the server's surface (``subscribe``, ``publish``, ``push_user``...);
:mod:`.backend` is the interface a broker implements and :mod:`.redis_backend` the Redis one.
"""
