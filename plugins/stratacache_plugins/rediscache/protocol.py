"""What the Redis backends ask of a client: the commands they send, on any topology.

``redis.Redis`` (one server, or a Sentinel-discovered master) and ``redis.RedisCluster``
both provide it; the backends are written against :class:`RedisLike` only, so that one
code path serves every topology. Every key a single command or a transaction touches shares
the caller's hash tag (see :mod:`.naming`), which is what lets a Cluster run it in one slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["RedisLike"]


class RedisLike(Protocol):
    """The commands the Redis backends use; each returns what redis-py's client does."""

    def get(self, name: str) -> Any:
        """``GET``."""

    def set(
        self,
        name: str,
        value: bytes,
        *,
        px: int | None = None,
        nx: bool = False,
        keepttl: bool = False,
    ) -> Any:
        """``SET``, with ``PX``, ``NX`` or ``KEEPTTL``."""

    def mget(self, keys: list[str]) -> Any:
        """``MGET`` (on a Cluster, of keys in one slot)."""

    def exists(self, *names: str) -> Any:
        """``EXISTS``."""

    def delete(self, *names: str) -> Any:
        """``DEL``."""

    def incrby(self, name: str, amount: int = 1) -> Any:
        """``INCRBY``."""

    def zrange(self, name: str, start: int, end: int) -> Any:
        """``ZRANGE``."""

    def zcount(self, name: str, min: str, max: str) -> Any:
        """``ZCOUNT``."""

    def zrem(self, name: str, *values: Any) -> Any:
        """``ZREM``."""

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        """``EVAL``: every key in one slot."""

    def pipeline(self, transaction: bool = True) -> Any:
        """A pipeline; a transaction (``MULTI``/``EXEC``) when ``transaction``."""

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[Any]:
        """``SCAN`` (on a Cluster, of every master)."""

    def info(self, section: str | None = None) -> Any:
        """``INFO``."""

    def dbsize(self) -> Any:
        """``DBSIZE``."""

    def time(self) -> Any:
        """``TIME``: the server's clock."""

    def ping(self) -> Any:
        """``PING``."""

    def publish(self, channel: str, message: bytes) -> Any:
        """``PUBLISH``."""
