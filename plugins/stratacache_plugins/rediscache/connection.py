"""Connections to Redis: one client per process and topology, never shared across ``fork()``.

Backends share a client while their topology (one server, a Sentinel master, a Cluster)
and options are the same; each holds a reference (:func:`acquire`, :func:`release`). When
the last one lets go (a reconfiguration replaced it, or the stack closed), the client is
retired. On one server or a Sentinel master, its pool's idle connections close at once, and
those in use close when their call hands them back: a call still running on a replaced
backend is never cut off, and a retired pool keeps no socket open. A Cluster client closes
its node connections when retired.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, LoadBalancingStrategy, RedisCluster
from redis.connection import parse_url
from redis.exceptions import AskError, MovedError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from stratacache_plugins.rediscache.aioclient import retire_async
from stratacache_plugins.rediscache.protocol import RedisLike
from stratacache_plugins.rediscache.resolution import bounded_class
from stratacache_plugins.rediscache.topology import Topology

__all__ = [
    "LazyClient",
    "OneAttemptCluster",
    "RedirectRetry",
    "RetiringPool",
    "acquire",
    "client_options",
    "drop",
    "master_moved",
    "pool_key",
    "release",
    "server_url",
    "subscriber_client",
    "subscriber_of",
]


class _Retiring:
    """A pool that, once retired, closes every connection handed back to it."""

    retired = False

    def retire(self) -> None:
        """Close the idle connections now, and every other one when it is released."""
        self.retired = True
        self.disconnect(inuse_connections=False)  # type: ignore[attr-defined]

    def release(self, connection: Any) -> None:
        super().release(connection)  # type: ignore[misc]
        if self.retired:
            self.disconnect(inuse_connections=False)  # type: ignore[attr-defined]


class RetiringPool(_Retiring, redis.ConnectionPool):
    """redis-py's pool of connections to one server, retired as :class:`_Retiring` says."""


class RetiringSentinelPool(_Retiring, SentinelConnectionPool):
    """redis-py's pool of connections to the master a Sentinel names, retired likewise."""


class LazyClient:
    """A client built on first use.

    A Cluster client connects when it is constructed, and configuring must connect to
    nothing (nor fail while Redis is down).
    """

    def __init__(self, build: Callable[[], RedisLike]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.built: RedisLike | None = None

    def get(self) -> RedisLike:
        """The client, built now if it is not yet (raising what building it raises)."""
        built = self.built
        if built is None:
            with self._lock:
                if self.built is None:
                    self.built = self._build()
                built = self.built
        return built


# By pid, topology and options: the client and how many backends hold it.
_pools: dict[tuple[Any, ...], tuple[LazyClient, int]] = {}
_pools_lock = threading.Lock()


def _forget_pools_after_fork() -> None:
    # A child must never use its parent's sockets: it builds its own pools on first use.
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _key(
    pid: int,
    topology: Topology,
    connect_timeout: float,
    read_timeout: float,
    extra: dict[str, Any],
) -> Any:
    return (pid, topology, connect_timeout, read_timeout, repr(sorted(extra.items())))


def pool_key(
    topology: Topology, connect_timeout: float, read_timeout: float, extra: dict[str, Any]
) -> Any:
    """What identifies this process's client for ``topology`` and options (sync or asyncio)."""
    return _key(os.getpid(), topology, connect_timeout, read_timeout, extra)


def client_options(
    connect_timeout: float, read_timeout: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """The options every client of ours gets, synchronous or ``redis.asyncio``."""
    timeouts = {"socket_connect_timeout": connect_timeout, "socket_timeout": read_timeout}
    # Keys are encoded as the other backends hash them: a lone surrogate (a file name's
    # undecodable byte) is a key like any other, not a UnicodeEncodeError.
    return {"encoding_errors": "surrogatepass", **timeouts, **extra}


def acquire(
    topology: Topology, connect_timeout: float, read_timeout: float, extra: dict[str, Any]
) -> LazyClient:
    """Return this process's client for ``topology``, held once more (built on first use).

    Every :func:`acquire` is matched by one :func:`release` with this pid and arguments.
    """
    _release_dropped()
    key = _key(os.getpid(), topology, connect_timeout, read_timeout, extra)
    with _pools_lock:
        client, holders = _pools.get(key, (None, 0))
        if client is None:
            options = client_options(connect_timeout, read_timeout, extra)
            build = _BUILDERS[topology.kind]
            client = LazyClient(lambda: build(topology, options))
        _pools[key] = (client, holders + 1)
        return client


def subscriber_client(
    topology: Topology, connect_timeout: float, read_timeout: float, extra: dict[str, Any]
) -> redis.Redis | RedisCluster:
    """Return a client of its own for pub/sub: a server's (or master's), or a Cluster's.

    A Cluster's slot map routes the sharded channels (see :mod:`.sharded`).

    It makes one attempt per call: a connection that fails raises, never reconnects (and
    resubscribes) unseen, so its listener knows every loss.
    """
    options = client_options(connect_timeout, read_timeout, extra)
    options["retry"] = Retry(NoBackoff(), 0)
    # RESP2: redis-py 8.1 reads a RESP3 pub/sub message through its push-handler path, which
    # formats every message for a debug log whether or not it is on (about 20,000
    # instructions a message more, the sender's own echo included).
    options["protocol"] = 2
    client = _BUILDERS[topology.kind](topology, options)
    assert isinstance(client, (redis.Redis, RedisCluster))
    return client


def subscriber_of(backend: Any) -> tuple[Any, Callable[[], redis.Redis | RedisCluster], float]:
    """How the invalidation listener of ``backend``'s server connects.

    Returns the listener's key in this process (by what it connects to, never by ``id()``:
    a collected client's id is reused), a function building a client of its own for the
    pub/sub connection (see :func:`subscriber_client`), and its read timeout.
    """
    given = backend._given_client
    if given is not None:  # a client the user built: a connection like its own
        pool = given.connection_pool
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}

        def build_given() -> redis.Redis:
            return redis.Redis(
                connection_pool=redis.ConnectionPool(
                    connection_class=pool.connection_class, **kwargs
                )
            )

        timeout = kwargs.get("socket_timeout") or 1.0
        shown = repr(sorted((k, repr(v)) for k, v in pool.connection_kwargs.items()))
        return (os.getpid(), pool.connection_class, shown), build_given, float(timeout)
    server = (
        backend.topology,
        backend._connect_timeout,
        backend._read_timeout,
        dict(backend._pool_options),
    )

    def build() -> redis.Redis | RedisCluster:
        return subscriber_client(*server)

    key = (os.getpid(), server[0], server[1], server[2], repr(sorted(server[3].items())))
    return key, build, float(backend._read_timeout)


def master_moved(client: redis.Redis | RedisCluster, connection: Any) -> str | None:
    """Why ``connection`` (of ``client``) is no longer on its master, or ``None``.

    Behind Sentinel, ask the sentinels which server is master now, and compare it with the
    server ``connection`` reached; a client of one server, or sentinels that cannot be
    asked now, give ``None`` (a master that fails is seen on its connection).
    """
    pool = getattr(client, "connection_pool", None)
    if not isinstance(pool, SentinelConnectionPool) or connection is None:
        return None
    try:
        host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
    except (redis.RedisError, OSError):
        return None
    here = (connection.host, int(connection.port))
    if (host, int(port)) == here:
        return None
    return f"the sentinels name {host}:{port} master, not {here[0]}:{here[1]}"


def _server(topology: Topology, options: dict[str, Any]) -> RedisLike:
    # The URL's scheme chooses the connection class; ours also bound the lookup.
    scheme = parse_url(topology.url).get("connection_class", redis.Connection)  # type: ignore[no-untyped-call]
    options = {"connection_class": bounded_class(scheme), **options}
    return redis.Redis(connection_pool=RetiringPool.from_url(topology.url, **options))


def _cluster(topology: Topology, options: dict[str, Any]) -> RedisLike:
    options.pop("db", None)  # validated to be 0: a cluster has no other
    nodes = [ClusterNode(node.host, node.port) for node in topology.nodes]  # type: ignore[no-untyped-call]
    if any(node.tls for node in topology.nodes):
        options.setdefault("ssl", True)
    if topology.read_from_replicas:  # redis-py's name for it: replicas and masters in turn
        options.setdefault("load_balancing_strategy", LoadBalancingStrategy.ROUND_ROBIN)
    options.setdefault("retry", RedirectRetry())
    return OneAttemptCluster(startup_nodes=nodes, **options)


class RedirectRetry(Retry):
    """The cluster client's retry policy: one attempt, but redirected transactions again.

    redis-py's default retries a failed command 10 times, backing off up to 1 s each time:
    a call to a killed master took 1.9 s, one to a frozen master far longer. Like our other
    clients, the cluster client makes one attempt (:meth:`get_retries` is 0 to its own
    loop); a failure still refreshes its slot map, so the next call finds a promoted
    replica. Single commands and pipelines follow ``MOVED`` and ``ASK`` by themselves; a
    transaction (``MULTI``/``EXEC``, as a tracked write is) on a migrating slot meets ``ASK``
    until the slot has moved, then ``MOVED``: it is retried on those (and ``TRYAGAIN``) as
    redis-py's default does, 10 times backing off up to 1 s, but never on a connection
    error or a timeout.
    """

    _REDIRECTIONS = (AskError, MovedError, TryAgainError)

    def __init__(self) -> None:
        backoff = ExponentialWithJitterBackoff(base=0.01, cap=1)
        super().__init__(backoff, 10, self._REDIRECTIONS)

    def get_retries(self) -> int:
        """0: the client's own loop retries nothing."""
        return 0

    def update_supported_errors(self, specified_errors: Any) -> None:
        """Add only redirections: a transaction adds connection errors and timeouts too."""
        redirections = [e for e in specified_errors if issubclass(e, self._REDIRECTIONS)]
        super().update_supported_errors(redirections)


class OneAttemptCluster(RedisCluster):
    """redis-py's cluster client, whose pipelines give up on a cluster that failed them again.

    redis-py resends, one by one, each command of a pipeline that met a connection error or
    a timeout: a ``get_many`` of 20 keys on a frozen master waited 21 read timeouts. Here
    the first resend that fails so too fails the rest at once. A resend that succeeds (the
    slot map was refreshed: a replica took over) lets the others go on, and ``MOVED`` and
    ``ASK`` are followed as before.
    """

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        """redis-py's ``ClusterPipeline``, whose resends stop at the first that fails."""
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        resend = pipe.parent_execute_command
        failed: list[Exception] = []

        def once(*args: Any, **options: Any) -> Any:
            if failed:
                raise failed[0]
            try:
                return resend(*args, **options)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                failed.append(exc)
                raise

        pipe.parent_execute_command = once
        return pipe


def _sentinel(topology: Topology, options: dict[str, Any]) -> RedisLike:
    username, password = topology.sentinel_auth
    own = {"username": username, "password": password}
    timeouts = {k: options[k] for k in ("socket_connect_timeout", "socket_timeout")}
    # One attempt per sentinel, as for every client of ours: redis-py's default retries each
    # with back-offs, and a refused password held every call 11 s while it tried them all.
    once = {"retry": Retry(NoBackoff(), 0)}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        [(node.host, node.port) for node in topology.nodes],
        sentinel_kwargs={**timeouts, **once, **{k: v for k, v in own.items() if v}},
        **{**once, **options},
    )
    master = str(topology.master)
    client: RedisLike = sentinel.master_for(master, connection_pool_class=RetiringSentinelPool)  # type: ignore[no-untyped-call]
    return client


_BUILDERS = {"server": _server, "cluster": _cluster, "sentinel": _sentinel}


def _retire(handle: LazyClient) -> None:
    client = handle.built
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, _Retiring):
        pool.retire()
    elif isinstance(client, RedisCluster):
        client.close()


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
    pid: int,
    topology: Topology,
    connect_timeout: float,
    read_timeout: float,
    extra: dict[str, Any],
) -> None:
    """Let go of a client :func:`acquire` returned in process ``pid``; the last one retires it.

    A release in a forked child of that process does nothing: the child has its own clients.
    """
    key = _key(pid, topology, connect_timeout, read_timeout, extra)
    with _pools_lock:
        client, holders = _pools.get(key, (None, 0))
        if client is None:
            return
        if holders > 1:
            _pools[key] = (client, holders - 1)
            return
        del _pools[key]
    _retire(client)
    retire_async(key)


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
