"""How a Redis backend reaches its server: this process's client, and failures as errors."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import RedisError

from stratacache import Backend, CacheError
from stratacache.options import OptionsError
from stratacache_plugins.rediscache.checks import connection_problems
from stratacache_plugins.rediscache.connection import acquire, drop, release, server_url

__all__ = ["RedisCacheError", "RedisClient"]


class RedisCacheError(CacheError):
    """Redis failed (unreachable, timed out, or answered an error); chains redis-py's error."""


class RedisClient(Backend):
    """Base of the Redis backends: the server, its client, and how its calls fail.

    The backend's constructor calls :meth:`_connect` once, after ``Backend.__init__``.
    """

    def _connect(
        self,
        host: str | redis.Redis,
        *,
        port: int,
        password: str | None,
        db: int,
        url: str | None,
        connect_timeout: float,
        read_timeout: float,
        options: dict[str, Any],
    ) -> None:
        """Remember the server and the pool's ``options``; ``check_connection`` pings now.

        Raises:
            OptionsError: An argument redis-py would refuse on every call, or one that
                breaks stratacache's contract (see :mod:`.checks`).
        """
        self._given_client = host if isinstance(host, redis.Redis) else None
        self._url = "" if self._given_client else server_url(str(host), port, db, url)
        timeouts = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}
        rejected = connection_problems(
            type(self), host=host, url=url, server=self._url, options=options, timeouts=timeouts
        )
        if rejected:
            raise OptionsError.refusing(rejected)
        # cachelib's (and redis-py's) names for the timeouts win over ours.
        self._connect_timeout = options.pop("socket_connect_timeout", connect_timeout)
        self._read_timeout = options.pop("socket_timeout", read_timeout)
        check_connection = bool(options.pop("check_connection", False))
        self._pool_options = options
        # A URL's own database and password win; these fill in what it leaves out. The
        # password never goes into the URL, where its reserved characters would break it.
        self._pool_options.setdefault("db", db)
        if password:
            self._pool_options.setdefault("password", password)
        self._client: tuple[redis.Redis | None, int] = (None, 0)
        self._held: weakref.finalize[Any, Any] | None = None
        if self._given_client is None:
            self.client  # noqa: B018 (holds the pool now: a reconfiguration keeps sharing it)
        if check_connection:
            self._run("PING", lambda r: r.ping(), False)

    @property
    def client(self) -> redis.Redis:
        """The redis-py client, on this process's pool for the server.

        A forked child gets a client on a pool of its own, never its parent's sockets. The
        backend holds its pool until :meth:`close` (or until it is garbage-collected).
        """
        if self._given_client is not None:
            return self._given_client
        client, pid = self._client
        if client is None or pid != os.getpid():
            pid = os.getpid()
            timeouts = (self._connect_timeout, self._read_timeout)
            server = (self._url, *timeouts, dict(self._pool_options))
            client = redis.Redis(connection_pool=acquire(*server))
            self._client = (client, pid)
            self._held = weakref.finalize(self, drop, pid, *server)
        return client

    @property
    def _write_client(self) -> redis.Redis:
        """The client under cachelib's name for it (``_read_client`` too): :attr:`client`.

        For code (and cachelib's own tests) that reaches for it, say to ``flushdb()``.
        """
        return self.client

    _read_client = _write_client

    def _run(
        self,
        operation: str,
        action: Callable[[redis.Redis], Any],
        fallback: Any,
        *,
        payload: int = 0,
    ) -> Any:
        """Run ``action`` on the client; turn a Redis failure into :class:`RedisCacheError`.

        ``fallback`` is what :class:`RedisCacheNoExceptions` returns instead of raising, and
        ``payload`` the bytes a write sends: it tells that backend whether a lost connection
        may be Redis refusing a value over its size limit.
        """
        try:
            return action(self.client)
        except RedisError as exc:
            self.stats.errors += 1
            raise RedisCacheError(f"Redis {operation} failed on {self._where()}: {exc}") from exc

    def _direct(self, operation: str, action: Callable[[redis.Redis], Any]) -> Any:
        """Run ``action`` on the client, raising :class:`RedisCacheError` on a failure.

        For the operator's commands (ping, describe, store_stats): unlike :meth:`_run`, it
        raises in every backend and skips no call during a back-off.
        """
        try:
            return action(self.client)
        except RedisError as exc:
            raise RedisCacheError(f"Redis {operation} failed on {self._where()}: {exc}") from exc

    def _where(self) -> str:
        from stratacache.settings import mask_url

        return mask_url(self._url) if self._url else repr(self._given_client)

    def info(self) -> dict[str, Any]:
        """The server's ``INFO`` as a dict (used memory, hits, misses...)."""
        return dict(self._run("INFO", lambda r: r.info(), {}))

    def ping(self) -> None:
        """One ``PING``; raises :class:`RedisCacheError` in every Redis backend."""
        self._direct("PING", lambda r: r.ping())

    def close(self) -> None:
        """Let go of the pool; the last backend on it closes its connections.

        A call still running keeps its connection until it ends; a call made later opens
        one and closes it after use. A client passed in by the user is left open.
        """
        held = self._held.detach() if self._held is not None else None
        if held is not None:
            release(*held[2])
