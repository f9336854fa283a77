"""A redis-server of a test's own, on its own port, that the test can stop, kill and start
again (the machine's shared Redis on 6379 is never touched); its data survives a restart
(append-only file). The fault suite's ``AofRedis`` is that server: one implementation."""

from fraudstream.faults.processes import AofRedis as RedisServer

__all__ = ["RedisServer"]
