"""``redis.asyncio`` clients: one per event loop, process and topology, closed with their loop.

An asyncio client is bound to the loop it first ran on: its connections are that loop's
streams, and used from another loop they fail ("attached to a different loop"). So each
loop gets its own client, shared by the backends on that loop with the same topology and
options (as the synchronous client is shared per process, see :mod:`.connection`). A loop
may end many times in a process: ``asyncio.run()`` called twice, pytest-asyncio's loop per
test, a thread running a loop per request (Flask's async views). When a loop shuts down
(``asyncio.run`` and pytest-asyncio call ``loop.shutdown_asyncgens()``, uvicorn runs under
``asyncio.run``), its clients close their connections inside it, so nothing is left open
and no "unclosed connection" warning is emitted: an asynchronous generator started on the
loop holds them, and the loop closes it, running its ``finally``; the loop's record goes
with it, so nothing of a finished loop is kept. A loop closed without that step leaves its
record until the next loop registers, which drops it (its sockets close when collected). A
forked child starts with no client (its parent's loops do not run there). When the last
backend of a topology lets go of it (a reconfiguration, ``close()``), its clients are
retired on every loop: a call running on them finishes, each connection closes when it is
handed back, and the clients close for good with their loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.cluster import LoadBalancingStrategy
from redis.exceptions import MaxConnectionsError

from stratacache_plugins.rediscache.topology import Topology

__all__ = ["LoopClient", "async_client", "build_async", "command_bound", "forks", "retire_async"]


class _LoopClients:
    """The clients of one event loop, by topology key, and what closes them with it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: dict[Any, tuple[Any, ...]] = {}
        self.retired: list[tuple[Any, ...]] = []  # let go of: closed with the loop at the latest
        self.generation = 0  # moves on whenever a client leaves ``clients``
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing: AsyncGenerator[None, None] | None = None


# Per process: each loop's clients, until the loop shuts down (or is found closed).
_loops: dict[asyncio.AbstractEventLoop, _LoopClients] = {}
_lock = threading.Lock()


class _Forks:
    """How many times this process's line forked: a key cached in a parent is stale after."""

    count = 0


forks = _Forks()


def _forget_after_fork() -> None:
    global _loops, _lock
    _loops = {}
    _lock = threading.Lock()
    forks.count += 1


os.register_at_fork(after_in_child=_forget_after_fork)


async def _close_with_loop(record: _LoopClients) -> AsyncGenerator[None, None]:
    """Suspended until the loop shuts down its asynchronous generators; then close."""
    try:
        yield
    finally:
        with _lock:
            if _loops.get(record.loop) is record:
                del _loops[record.loop]
        built = [*record.clients.values(), *record.retired]
        record.clients, record.retired = {}, []
        record.generation += 1
        for clients in built:
            await _aclose(clients)


async def _aclose(clients: tuple[Any, ...]) -> None:
    """Close a client and those it came with (a Sentinel's own clients)."""
    for client in clients:
        with contextlib.suppress(Exception):  # a client of a dead server: nothing to close
            if isinstance(client, aioredis.Redis):  # its pool too, which we gave it
                await client.aclose(close_connection_pool=True)
            else:
                await client.aclose()


class LoopClient:
    """One backend's way to the running loop's client for ``key``, remembering the last one.

    A shared hit asks for the client on every call: this answers from the last loop's client
    while that loop runs and the client is still its own (neither retired nor closed), and
    looks it up again otherwise (a new loop, a retirement, a fork).
    """

    __slots__ = ("_build", "_key", "_last")

    def __init__(self, key: Any, build: Callable[[], tuple[Any, ...]]) -> None:
        self._key = key
        self._build = build
        self._last: tuple[asyncio.AbstractEventLoop, _LoopClients, int, Any] | None = None

    def get(self) -> Any:
        """The running loop's client (call it from a coroutine)."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop and last[2] == last[1].generation:
            return last[3]
        record = _loops.get(loop)
        if record is None:
            record = _register(loop)
        client = async_client(self._key, self._build, record)
        self._last = (loop, record, record.generation, client)
        return client


def async_client(
    key: Any, build: Callable[[], tuple[Any, ...]], record: _LoopClients | None = None
) -> Any:
    """Return the running loop's client for ``key``, built by ``build`` on first use.

    ``build`` returns the client, then any client to close with it. Must be called from a
    coroutine (a running loop); ``record`` is that loop's, when the caller has it.
    """
    if record is None:
        loop = asyncio.get_running_loop()
        record = _loops.get(loop) or _register(loop)
    clients = record.clients.get(key)
    if clients is None:
        clients = record.clients[key] = build()
    return clients[0]


def _register(loop: asyncio.AbstractEventLoop) -> _LoopClients:
    """The record of ``loop``, made now, with the generator that closes it with the loop."""
    with _lock:
        # A loop closed without shutting down its generators left its record: drop it (its
        # sockets close when collected). So at most one dead loop's record is ever kept.
        for dead in [other for other in _loops if other.is_closed()]:
            del _loops[dead]
        record = _loops.get(loop)
        if record is None:
            record = _loops[loop] = _LoopClients(loop)
    if record.closing is None:
        record.closing = _close_with_loop(record)
        _start(record.closing)
    return record


def _start(generator: AsyncGenerator[None, None]) -> None:
    """Run ``generator`` to its first ``yield`` now: the running loop then tracks it."""
    step = generator.__anext__()
    try:
        step.send(None)
    except StopIteration:
        return
    raise AssertionError("the closing generator awaited before its first yield")  # pragma: no cover


def retire_async(key: Any) -> None:
    """Let go of the clients of ``key`` on every loop (its last backend let go of it).

    Calls running on them finish: a pool of ours closes its idle connections at once and
    each other one when it is handed back; the clients close for good with their loop.
    """
    with _lock:
        records = list(_loops.values())
    for record in records:
        clients = record.clients.pop(key, None)
        if clients is None:
            continue
        record.generation += 1
        record.retired.append(clients)
        for client in clients:
            pool = getattr(client, "connection_pool", None)
            if isinstance(pool, _Waiting):
                pool.retired = True
                _on_loop(record, pool.disconnect_idle)


def _on_loop(record: _LoopClients, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``work()`` as a task of ``record``'s loop, from any thread (if the loop lives)."""
    loop = record.loop

    def start() -> None:
        task = loop.create_task(work())
        record.tasks.add(task)
        task.add_done_callback(record.tasks.discard)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    with contextlib.suppress(RuntimeError):  # closed meanwhile: its clients are gone too
        if loop is running:
            start()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(start)


def command_bound(topology: Topology, options: dict[str, Any]) -> float:
    """The longest one command on the asyncio client may take: a connect and a reply.

    The timeouts are the synchronous client's (``options``), or those a server URL's query
    sets, which redis-py lets win over the options.
    """
    if topology.kind == "server":
        options = {**options, **parse_url(topology.url)}
    return float(options["socket_connect_timeout"]) + float(options["socket_timeout"])


def build_async(topology: Topology, options: dict[str, Any]) -> tuple[Any, ...]:
    """A ``redis.asyncio`` client for ``topology``, with the synchronous client's options.

    Returns the client, then the clients to close with it (a Sentinel's own).

    ``options`` are the pool options the synchronous client gets (timeouts, credentials,
    TLS...). Like it, the client makes one attempt per command: the backend's own policy
    (``RedisCacheNoExceptions``' back-off) decides what a failure means. The connect timeout
    bounds the name lookup too (asyncio resolves inside the connection's timeout). On one
    server and on a Sentinel master, the pool holds ``max_connections`` (100 by default),
    and a call waits for a free one rather than failing (a Cluster client's node pools are
    unbounded by default).

    Its connections have no read timeout of their own: the backend bounds each command as
    a whole (:func:`command_bound`, one deadline per command), which costs less than
    redis-py's per-read timeout plus the task ``asyncio.wait_for`` makes for every write
    when a connection has a read timeout (7 % of the throughput of 100 tasks doing hits).
    The connect timeout stays on the connections, and the Sentinels' own clients keep both.
    """
    wait = command_bound(topology, options)
    options = {**options, "retry": Retry(NoBackoff(), 0)}
    timeouts = {k: options[k] for k in ("socket_connect_timeout", "socket_timeout")}
    options["socket_timeout"] = None
    # The synchronous connection classes (checked, or given by the user) are not asyncio's:
    # redis.asyncio picks its own from the URL's scheme.
    options.pop("connection_class", None)
    if topology.kind == "cluster":
        options.pop("db", None)
        nodes = [ClusterNode(node.host, node.port) for node in topology.nodes]
        if any(node.tls for node in topology.nodes):
            options.setdefault("ssl", True)
        if topology.read_from_replicas:
            options.setdefault("load_balancing_strategy", LoadBalancingStrategy.ROUND_ROBIN)
        return (AsyncRedisCluster(startup_nodes=nodes, **options),)
    if topology.kind == "sentinel":
        username, password = topology.sentinel_auth
        own = {k: v for k, v in {"username": username, "password": password}.items() if v}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [(node.host, node.port) for node in topology.nodes],
            sentinel_kwargs={**timeouts, "retry": Retry(NoBackoff(), 0), **own},
            **options,
        )
        master = sentinel.master_for(
            str(topology.master), connection_pool_class=WaitingSentinelPool, wait=wait
        )
        return (master, *sentinel.sentinels)
    pool = WaitingPool.from_url(topology.url, wait=wait, **options)
    pool.connection_kwargs["socket_timeout"] = None  # a URL's own wins in from_url
    return (aioredis.Redis(connection_pool=pool),)


class _Waiting:
    """A pool whose callers wait for a free connection when all are in use, and retires.

    A burst of awaits wider than ``max_connections`` (100 by default) waits, for one connect
    and one read timeout at most (``wait``), where redis-py's plain pool fails them at once.
    redis-py's ``BlockingConnectionPool`` waits too, but takes a condition lock and a
    timeout on every call: a shared hit cost 46 µs more. Here a call pays only when the pool
    is full. Once retired, the pool closes each connection handed back to it.
    """

    retired = False

    def __init__(self, *args: Any, wait: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wait = wait
        self._freed: asyncio.Event | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A connection; when all are in use, one released within ``wait`` seconds."""
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await super().get_connection(*args, **kwargs)  # type: ignore[misc]
            except MaxConnectionsError:
                now = loop.time()
                deadline = now + self._wait if deadline is None else deadline
                if now >= deadline:
                    raise
                freed = self._freed = self._freed or asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed.wait(), deadline - now)

    async def release(self, connection: Any) -> None:
        """Hand ``connection`` back (closed if retired), and wake the callers waiting."""
        await super().release(connection)  # type: ignore[misc]
        freed, self._freed = self._freed, None
        if freed is not None:
            freed.set()
        if self.retired:
            await self.disconnect_idle()

    async def disconnect_idle(self) -> None:
        """Close the connections no call is using."""
        await self.disconnect(inuse_connections=False)  # type: ignore[attr-defined]


class WaitingPool(_Waiting, aioredis.ConnectionPool):
    """redis-py's asyncio pool to one server, waiting and retiring as :class:`_Waiting`."""


class WaitingSentinelPool(_Waiting, SentinelConnectionPool):
    """redis-py's asyncio pool to a Sentinel's master, waiting and retiring likewise."""
