"""Connections to Redis: one pool per process and server, never shared across ``fork()``."""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

__all__ = ["pool", "server_url"]

_pools: dict[tuple[Any, ...], redis.ConnectionPool] = {}  # by pid, server and options
_pools_lock = threading.Lock()


def _forget_pools_after_fork() -> None:
    # A child must never use its parent's sockets: it builds its own pools on first use.
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def pool(url: str, connect_timeout: float, read_timeout: float, extra: dict[str, Any]) -> Any:
    """Return this process's connection pool for the server at ``url`` (built once)."""
    key = (os.getpid(), url, connect_timeout, read_timeout, repr(sorted(extra.items())))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = redis.ConnectionPool.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=read_timeout,
                # Keys are encoded as the other backends hash them: a lone surrogate (a file
                # name's undecodable byte) is a key like any other, not a UnicodeEncodeError.
                **{"encoding_errors": "surrogatepass", **extra},
            )
            _pools[key] = pool
        return pool


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
