"""What a backend tells the operator's commands: ``stratacache ping``, ``info`` and ``stats``.

:class:`~stratacache.Backend` derives from :class:`Inspectable`; a backend overrides these
methods to say where its store is, how big, and what the store itself counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any

__all__ = ["Inspectable"]


class Inspectable:
    """The operator's view of a backend's store; every method raises if it cannot answer."""

    has: Callable[[str], bool]  # Backend's (cachelib's), declared for the type checker only

    def ping(self) -> None:
        """Make one round trip to the store; raise if it cannot answer.

        ``stratacache ping`` times it. This default asks :meth:`has` about a key nobody
        writes; a backend that swallows failures (RedisCacheNoExceptions) overrides it to let
        them through.
        """
        self.has("__stratacache_ping__")

    def ping_nodes(self) -> list[dict[str, Any]]:
        """Ping each server behind the store, for ``stratacache ping``: one dict per server.

        Each has ``node`` (its address), ``role`` (``master``, ``replica``...), ``ok`` and
        ``latency_ms`` or ``error``. This default returns ``[]``: the store is one thing,
        which :meth:`ping` checks. A store of several servers (Redis Cluster) lists them.
        """
        return []

    def describe(self) -> dict[str, Any]:
        """Return what the store is and how big, for ``stratacache info``: a JSON-ready dict.

        This default gives the backend's class, its default timeout, what ``clear()``
        removes and, for a backend with ``len()``, its entry count. A backend adds where it
        lives (a URL, a directory) and its size; it raises when the store cannot answer.
        """
        described: dict[str, Any] = {
            "backend": type(self).__name__,
            "default_timeout": getattr(self, "default_timeout", None),
            "clears": "every entry of this backend",
        }
        if isinstance(self, Sized):
            described["entries"] = len(self)
        return described

    def store_stats(self) -> dict[str, Any]:
        """Return the store's own statistics, for ``stratacache stats``: a JSON-ready dict.

        These are what the store itself knows, shared by every process using it (a Redis
        server's hits, misses and evictions, the entries of each function), unlike the
        in-process counters of :attr:`stats`. This default gives the entry count of a
        backend with ``len()``, else nothing; it raises when the store cannot answer.
        """
        return {"entries": len(self)} if isinstance(self, Sized) else {}
