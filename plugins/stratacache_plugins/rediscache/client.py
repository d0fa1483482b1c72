"""How a Redis backend reaches its server: this process's client, and failures as errors.

Each operation is an *action*, a function of the client that sends its commands; the
backend runs it through :meth:`RedisClient._run` (the synchronous client) or
:meth:`RedisClient._arun` (this event loop's ``redis.asyncio`` client, see
:mod:`.aioclient`), which apply the same failure policy. An action is written once for
both: redis-py's asyncio commands and pipelines take the same calls and return awaitables,
which ``_arun`` awaits.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stratacache import Backend, CacheError
from stratacache.options import OptionProblem, OptionsError
from stratacache_plugins.rediscache.aioclient import LoopClient, build_async, command_bound, forks
from stratacache_plugins.rediscache.checks import cluster_prefix_problems, connection_problems
from stratacache_plugins.rediscache.connection import (
    LazyClient,
    acquire,
    client_options,
    drop,
    pool_key,
    release,
    server_url,
)
from stratacache_plugins.rediscache.protocol import RedisLike
from stratacache_plugins.rediscache.topology import Topology, TopologyError, build_topology

__all__ = ["REDIS_FAILURES", "RedisCacheError", "RedisClient", "RedisFailure"]

REDIS_FAILURES = (RedisError, RedisClusterException)
"""What redis-py raises when Redis fails: its errors, and a Cluster it cannot reach."""
RedisFailure = RedisError | RedisClusterException


class RedisCacheError(CacheError):
    """Redis failed (unreachable, timed out, or answered an error); chains redis-py's error."""


class RedisClient(Backend):
    """Base of the Redis backends: the server, its client, and how its calls fail.

    The backend's constructor calls :meth:`_connect` once, after ``Backend.__init__`` and
    after setting ``_prefix`` (which a Cluster tier checks).
    """

    _prefix: str | Callable[[], str] = ""
    _async_key: tuple[int, LoopClient, float] | None = None

    def _connect(
        self,
        host: str | redis.Redis | RedisCluster | None,
        *,
        port: int,
        password: str | None,
        db: int,
        url: str | None,
        connect_timeout: float,
        read_timeout: float,
        options: dict[str, Any],
        topology: dict[str, Any] | None = None,
    ) -> None:
        """Remember the topology and the pool's ``options``; ``check_connection`` pings now.

        ``topology`` holds the Cluster and Sentinel settings (``cluster``, ``sentinels``,
        ``sentinel_master``, ``sentinel_username``, ``sentinel_password``,
        ``read_from_replicas``), all ``None`` (or false) for one server.

        Raises:
            OptionsError: An argument redis-py would refuse on every call, one that breaks
                stratacache's contract (see :mod:`.checks`), or settings naming two
                topologies at once.
        """
        if host is None:  # cachelib's RedisCache refuses it too (with a ValueError)
            text = "give a host name, a redis:// URL or a redis.Redis client"
            raise OptionsError.refusing([OptionProblem("host", None, text)])
        given = host if isinstance(host, redis.Redis | RedisCluster) else None
        self._given_client: RedisLike | None = given
        server = "" if given is not None else server_url(str(host), port, db, url)
        try:
            self._topology = build_topology(
                url=server,
                url_given=bool(url),
                host_given=given is None and host not in ("localhost", ""),
                db=db,
                **(topology or {}),
            )
        except TopologyError as exc:
            raise OptionsError.refusing([OptionProblem(exc.option, exc.value, exc.text)]) from None
        self._url = server if self._topology.kind == "server" else ""
        timeouts = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}
        rejected = connection_problems(
            type(self),
            host=host,
            url=url,
            server=self._url or self._topology.first_node_url(),
            options=options,
            timeouts=timeouts,
        )
        if self._topology.kind == "cluster":
            rejected += cluster_prefix_problems(self._prefix)
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
        self._client: tuple[RedisLike | None, int] = (None, -1)
        self._held: tuple[LazyClient, int, weakref.finalize[Any, Any]] | None = None
        if self._given_client is None:
            self._hold()  # now: a reconfiguration keeps sharing it
        if check_connection:
            self._run("PING", lambda r: r.ping(), False)

    @property
    def topology(self) -> Topology:
        """Where the tier's Redis is: one server, a Sentinel master, or a Cluster."""
        return self._topology

    @property
    def client(self) -> RedisLike:
        """The redis-py client (``redis.Redis``, or ``redis.RedisCluster``) of this process.

        A forked child gets a client of its own, never its parent's sockets. The backend
        holds it until :meth:`close` (or until it is garbage-collected).
        """
        if self._given_client is not None:
            return self._given_client
        client, forked = self._client
        if client is None or forked != forks.count:  # a count, cheaper than os.getpid()
            client = self._hold().get()  # on a Cluster, this connects: it may raise
            self._client = (client, forks.count)
        return client

    def _hold(self) -> LazyClient:
        """This process's client handle, held (once per process) until :meth:`close`."""
        held, pid = self._held, os.getpid()
        if held is None or held[1] != pid:
            timeouts = (self._connect_timeout, self._read_timeout)
            server = (self._topology, *timeouts, dict(self._pool_options))
            handle = acquire(*server)
            held = (handle, pid, weakref.finalize(self, drop, pid, *server))
            self._held = held
        return held[0]

    @property
    def _write_client(self) -> RedisLike:
        """The client under cachelib's name for it (``_read_client`` too): :attr:`client`.

        For code (and cachelib's own tests) that reaches for it, say to ``flushdb()``.
        """
        return self.client

    _read_client = _write_client

    @property
    def aclient(self) -> Any:
        """The ``redis.asyncio`` client of the running event loop (see :mod:`.aioclient`).

        Call it from a coroutine. With a client passed in by the user, that client (async
        operations then run it in worker threads).
        """
        if self._given_client is not None:
            return self._given_client
        return self._async_client()[1].get()

    def _async_client(self) -> tuple[int, LoopClient, float]:
        """This process's way to each loop's client, and the bound of one command on it."""
        found = self._async_key
        if found is None or found[0] != forks.count:
            timeouts = (self._connect_timeout, self._read_timeout)
            options = client_options(*timeouts, self._pool_options)
            topology = self._topology
            key = pool_key(topology, *timeouts, self._pool_options)
            built = LoopClient(key, lambda: build_async(topology, options))
            found = self._async_key = (forks.count, built, command_bound(topology, options))
        return found

    async def _acall(self, action: Callable[[Any], Any]) -> Any:
        """Run ``action`` on this loop's client and await what it returns, bounded.

        On a ``redis.asyncio`` client every command and pipeline ``execute`` is awaitable.
        One deadline bounds the whole command (a connect, if it needs one, and its reply),
        where redis-py would bound each read and wrap each write in a task of its own
        (``asyncio.wait_for``): see :func:`.aioclient.build_async`. A command cut short
        leaves no reply behind (redis-py closes a connection interrupted mid-command), and
        fails as redis-py's timeout does, so the backends' policies read it the same way.
        """
        given = self._given_client
        if given is not None:  # the user's synchronous client: in a worker thread
            return await asyncio.to_thread(action, given)
        found = self._async_key
        if found is None or found[0] != forks.count:
            found = self._async_client()
        client, bound = found[1].get(), found[2]
        try:
            async with asyncio.timeout(bound):
                return await action(client)
        except TimeoutError as exc:
            raise RedisTimeoutError(f"no reply within {bound:g} s") from exc

    async def _arun(
        self,
        operation: str,
        action: Callable[[Any], Any],
        fallback: Any,
        *,
        payload: int = 0,
    ) -> Any:
        """:meth:`_run`, on this event loop's ``redis.asyncio`` client, awaited."""
        try:
            return await self._acall(action)
        except REDIS_FAILURES as exc:
            raise self._failed(operation, exc) from exc

    def _failed(self, operation: str, exc: RedisFailure) -> RedisCacheError:
        """Count a failed call; the error :meth:`_run` raises for it."""
        self.stats.errors += 1
        return RedisCacheError(f"Redis {operation} failed on {self._where()}: {exc}")

    def _run(
        self,
        operation: str,
        action: Callable[[RedisLike], Any],
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
        except REDIS_FAILURES as exc:
            raise self._failed(operation, exc) from exc

    def _direct(self, operation: str, action: Callable[[RedisLike], Any]) -> Any:
        """Run ``action`` on the client, raising :class:`RedisCacheError` on a failure.

        For the operator's commands (ping, describe, store_stats): unlike :meth:`_run`, it
        raises in every backend and skips no call during a back-off.
        """
        try:
            return action(self.client)
        except REDIS_FAILURES as exc:
            raise RedisCacheError(f"Redis {operation} failed on {self._where()}: {exc}") from exc

    def _where(self) -> str:
        if self._given_client is not None:
            return repr(self._given_client)
        return self._topology.describe()

    def info(self) -> dict[str, Any]:
        """The server's ``INFO`` as a dict (used memory, hits, misses...)."""
        return dict(self._run("INFO", lambda r: r.info(), {}))

    def close(self) -> None:
        """Let go of the pool; the last backend on it closes its connections.

        A call still running keeps its connection until it ends; a call made later opens
        one and closes it after use. A client passed in by the user is left open.
        """
        held = self._held[2].detach() if self._held is not None else None
        if held is not None:
            release(*held[2])
