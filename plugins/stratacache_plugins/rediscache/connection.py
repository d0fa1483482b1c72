"""Connections to Redis: one pool per process and server, never shared across ``fork()``.

Backends share a pool while their server and options are the same; each holds a reference
(:func:`acquire`, :func:`release`). When the last one lets go (a reconfiguration replaced
it, or the stack closed), the pool is retired: its idle connections close at once, and
those in use close when their call hands them back. A call still running on a replaced
backend is never cut off, and a retired pool keeps no socket open.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.connection import parse_url

from stratacache_plugins.rediscache.resolution import bounded_class

__all__ = ["RetiringPool", "acquire", "drop", "release", "server_url"]


class RetiringPool(redis.ConnectionPool):
    """A connection pool that, once retired, closes every connection handed back to it."""

    retired = False

    def retire(self) -> None:
        """Close the idle connections now, and every other one when it is released."""
        self.retired = True
        self.disconnect(inuse_connections=False)

    def release(self, connection: Any) -> None:  # noqa: D102 (redis-py's, then closing)
        super().release(connection)
        if self.retired:
            self.disconnect(inuse_connections=False)


# By pid, server and options: the pool and how many backends hold it.
_pools: dict[tuple[Any, ...], tuple[RetiringPool, int]] = {}
_pools_lock = threading.Lock()


def _forget_pools_after_fork() -> None:
    # A child must never use its parent's sockets: it builds its own pools on first use.
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _key(
    pid: int, url: str, connect_timeout: float, read_timeout: float, extra: dict[str, Any]
) -> Any:
    return (pid, url, connect_timeout, read_timeout, repr(sorted(extra.items())))


def acquire(
    url: str, connect_timeout: float, read_timeout: float, extra: dict[str, Any]
) -> RetiringPool:
    """Return this process's pool for the server at ``url``, held once more (built once).

    Every :func:`acquire` is matched by one :func:`release` with this pid and arguments.
    """
    _release_dropped()
    key = _key(os.getpid(), url, connect_timeout, read_timeout, extra)
    with _pools_lock:
        pool, holders = _pools.get(key, (None, 0))
        if pool is None:
            # The URL's scheme chooses the connection class; ours also bound the lookup.
            scheme = parse_url(url).get("connection_class", redis.Connection)  # type: ignore[no-untyped-call]
            pool = RetiringPool.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=read_timeout,
                # Keys are encoded as the other backends hash them: a lone surrogate (a file
                # name's undecodable byte) is a key like any other, not a UnicodeEncodeError.
                **{
                    "encoding_errors": "surrogatepass",
                    "connection_class": bounded_class(scheme),
                    **extra,
                },
            )
        _pools[key] = (pool, holders + 1)
        return pool


_dropped: list[tuple[Any, ...]] = []  # released by the garbage collector, not yet retired


def drop(*server: Any) -> None:
    """:func:`release`, for a garbage-collected backend: done at the next acquire or release.

    The collector may run inside :func:`acquire`, with the pools' lock held.
    """
    _dropped.append(server)


def _release_dropped() -> None:
    while _dropped:
        release(*_dropped.pop())


def release(
    pid: int, url: str, connect_timeout: float, read_timeout: float, extra: dict[str, Any]
) -> None:
    """Let go of a pool :func:`acquire` returned in process ``pid``; the last one retires it.

    A release in a forked child of that process does nothing: the child has its own pools.
    """
    key = _key(pid, url, connect_timeout, read_timeout, extra)
    with _pools_lock:
        pool, holders = _pools.get(key, (None, 0))
        if pool is None:
            return
        if holders > 1:
            _pools[key] = (pool, holders - 1)
            return
        del _pools[key]
    pool.retire()


def server_url(host: str, port: int, db: int, url: str | None) -> str:
    """Return the URL of the server.

    That is ``url``, or a URL given as ``host``, or one built from ``host``, ``port`` and
    ``db``: never with the password, which travels apart.
    """
    if url:
        return url
    if "://" in host:
        return host
    return f"redis://{host}:{port}/{db}"
