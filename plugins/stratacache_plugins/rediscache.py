"""The Redis backends: RedisCache, RedisCacheNoExceptions and RedisCacheAtomic.

* :class:`RedisCache` raises :class:`RedisCacheError` (a :class:`~stratacache.CacheError`)
  when Redis fails, and :class:`~stratacache.DeserializationError` for an unreadable entry.
* :class:`RedisCacheNoExceptions` never raises to its caller: an unreadable entry is deleted
  and is a miss; while Redis is unreachable, slow or answering errors, reads miss and writes
  report failure, and Redis is skipped for a short back-off between probes.
* :class:`RedisCacheAtomic` adds ``atomic_writes`` coordination across processes and hosts.

Keys: the decorator's keys start with the function's name in braces (``{module.f}(...)``), a
Redis Cluster hash tag, so an entry, its lock and its function's tracking set share a slot.
Each function's keys are tracked in a sorted set scored by expiry, trimmed of expired members
on every write, so ``f.clear_cache()`` deletes exactly those keys without a scan and the
tracking data cannot outgrow the live entries.
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, ClassVar, cast

import redis
from redis.exceptions import (
    BusyLoadingError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    WatchError,
)

from stratacache import (
    NO_VALUE,
    Backend,
    CacheError,
    Computation,
    DeserializationError,
    Serializer,
    Timeout,
)

__all__ = [
    "AtomicWaitTimeout",
    "RedisCache",
    "RedisCacheAtomic",
    "RedisCacheError",
    "RedisCacheNoExceptions",
]

logger = logging.getLogger(__name__)

_TRACKING_SUFFIX = ":__tracked__"
_LOCK_PREFIX = "__lock__:"
_CLEAR_BATCH = 500
# Error replies that say the server cannot serve now (so it is skipped for a back-off), as
# opposed to replies about one key or command.
_SERVER_STATE_ERRORS = (BusyLoadingError, OutOfMemoryError, ReadOnlyError)


def _track_lua(tracking: str, member: str, score: str, now: str) -> str:
    """Lua that tracks ``member`` in the sorted set ``tracking``.

    The score is when the entry expires. Members whose entry expired are dropped, and the set
    lives exactly as long as its longest-lived member (forever if one never expires).
    """
    return f"""
redis.call('ZADD', {tracking}, {score}, {member})
redis.call('ZREMRANGEBYSCORE', {tracking}, '-inf', {now})
local top = redis.call('ZRANGE', {tracking}, -1, -1, 'WITHSCORES')
if top[2] == 'inf' or top[2] == '+inf' then
  redis.call('PERSIST', {tracking})
else
  redis.call('PEXPIREAT', {tracking}, top[2])
end
"""


# KEYS[1]: the tracking set. ARGV: member, score ('+inf' = never), now in ms.
_TRACK = _track_lua("KEYS[1]", "ARGV[1]", "ARGV[2]", "ARGV[3]")

_INTEGER = re.compile(rb"-?[0-9]+")
_BALANCED_BRACES = re.compile(r"[^{}]*(?:\{[^{}]*\}[^{}]*)*")
_DIGIT_STARTS = frozenset(b"-0123456789"[i : i + 1] for i in range(11))


class RedisCacheError(CacheError):
    """Redis failed (unreachable, timed out, or answered an error); chains redis-py's error."""


class AtomicWaitTimeout(CacheError, TimeoutError):  # noqa: N818 (reads as what happened)
    """An ``at_most_once`` caller waited ``lock_wait`` seconds for another's result in vain."""


# -- connection pools: one per process and server ---------------------------------------

_pools: dict[tuple[Any, ...], redis.ConnectionPool] = {}  # by pid, server and options
_pools_lock = threading.Lock()


def _forget_pools_after_fork() -> None:
    # A child must never use its parent's sockets: it builds its own pools on first use.
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _pool(url: str, connect_timeout: float, read_timeout: float, extra: dict[str, Any]) -> Any:
    key = (os.getpid(), url, connect_timeout, read_timeout, repr(sorted(extra.items())))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = redis.ConnectionPool.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=read_timeout,
                **extra,
            )
            _pools[key] = pool
        return pool


def _url(host: str, port: int, db: int, url: str | None) -> str:
    if url:
        return url
    if "://" in host:
        return host
    return f"redis://{host}:{port}/{db}"


class RedisCache(Backend):
    """The shared layer on Redis: every instance of the service sees the same entries.

    Accepts cachelib's ``RedisCache`` arguments, so it drops in where that one is used.
    Values are pickled (``CACHE_SERIALIZER`` applies); a timeout of 0 means no expiry.
    A hit is one ``GET``; a tracked write is one pipelined round trip. Errors from Redis raise
    :class:`RedisCacheError`; an unreadable entry raises
    :class:`~stratacache.DeserializationError`.

    Args:
        host: Host name, a ``redis://``/``rediss://``/``unix://`` URL, or a ready
            ``redis.Redis`` client (then the connection arguments are ignored).
        port: Port, with a host name.
        password: Password, with a host name.
        db: Database number, with a host name.
        default_timeout: Seconds an entry lives when ``set`` gets no timeout; 0 = forever.
        key_prefix: Prepended to every key; ``clear()`` deletes only keys under it.
        url: A Redis URL; takes precedence over host, port, password and db.
        serializer: How values become bytes (default pickle).
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for a reply.
        **kwargs: Further arguments of redis-py's connection pool (``ssl_cert_reqs``...).
    """

    def __init__(  # noqa: PLR0917 (cachelib's RedisCache takes these positionally)
        self,
        host: str | redis.Redis = "localhost",
        port: int = 6379,
        password: str | None = None,
        db: int = 0,
        default_timeout: int | timedelta = 300,
        key_prefix: str | Callable[[], str] | None = None,
        *,
        url: str | None = None,
        serializer: Serializer | None = None,
        connect_timeout: float = 0.5,
        read_timeout: float = 1.0,
        ignore_delete_many_errors: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            default_timeout,
            serializer=serializer,
            ignore_delete_many_errors=ignore_delete_many_errors,
        )
        self._prefix: str | Callable[[], str] = key_prefix or ""
        if isinstance(self._prefix, str):
            _check_prefix(self._prefix)
        self._given_client = host if isinstance(host, redis.Redis) else None
        self._url = "" if self._given_client else _url(str(host), port, db, url)
        # cachelib's (and redis-py's) names for the timeouts win over ours.
        self._connect_timeout = kwargs.pop("socket_connect_timeout", connect_timeout)
        self._read_timeout = kwargs.pop("socket_timeout", read_timeout)
        check_connection = bool(kwargs.pop("check_connection", False))
        self._pool_options = kwargs
        # A URL's own database and password win; these fill in what it leaves out. The
        # password never goes into the URL, where its reserved characters would break it.
        self._pool_options.setdefault("db", db)
        if password:
            self._pool_options.setdefault("password", password)
        self._client: tuple[redis.Redis | None, int] = (None, 0)
        if check_connection:
            self._run("PING", lambda r: r.ping(), False)

    # -- the connection -------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis:
        """The redis-py client, on this process's pool for the server (created lazily).

        A forked child gets a client on a pool of its own, never its parent's sockets.
        """
        if self._given_client is not None:
            return self._given_client
        client, pid = self._client
        if client is None or pid != os.getpid():
            pool = _pool(self._url, self._connect_timeout, self._read_timeout, self._pool_options)
            client = redis.Redis(connection_pool=pool)
            self._client = (client, os.getpid())
        return client

    def _run(self, operation: str, action: Callable[[redis.Redis], Any], fallback: Any) -> Any:
        """Run ``action`` on the client; turn a Redis failure into :class:`RedisCacheError`.

        ``fallback`` is what :class:`RedisCacheNoExceptions` returns instead of raising.
        """
        try:
            return action(self.client)
        except RedisError as exc:
            raise RedisCacheError(f"Redis {operation} failed on {self._where()}: {exc}") from exc

    def _where(self) -> str:
        from stratacache.settings import mask_url

        return mask_url(self._url) if self._url else repr(self._given_client)

    # -- keys -----------------------------------------------------------------------------

    @property
    def key_prefix(self) -> str:
        """The prefix of every key (a callable prefix, as cachelib allows, is called)."""
        prefix = self._prefix
        if isinstance(prefix, str):
            return prefix
        value = prefix()
        _check_prefix(value)
        return value

    def _key(self, key: str) -> str:
        return self.key_prefix + key

    def _tracking_key(self, group: str) -> str:
        return f"{self.key_prefix}{{{group}}}{_TRACKING_SUFFIX}"

    def _lock_key(self, key: str) -> str:
        return self.key_prefix + _LOCK_PREFIX + key

    def _milliseconds(self, timeout: Timeout) -> int:
        """Timeout in whole milliseconds (rounded up); 0 = no expiry, < 0 = already expired."""
        seconds = self.timeout_seconds(timeout)
        return math.ceil(seconds * 1000) if seconds > 0 else (0 if seconds == 0 else -1)

    def _dumps(self, value: Any) -> bytes:
        """Serialize ``value``; integers are stored as plain digits, as cachelib does.

        Digits let ``INCRBY`` work on counters; every other value goes to the serializer.
        """
        if type(value) is int:
            return str(value).encode()
        return self.serializer.dumps(value)

    def _decode(self, data: bytes) -> Any:
        if data[:1] in _DIGIT_STARTS and _INTEGER.fullmatch(data):
            return int(data)
        return self.serializer.loads(data)

    # -- reads ----------------------------------------------------------------------------

    def lookup(self, key: str) -> Any:
        """One ``GET``: the value, or ``NO_VALUE`` on a miss."""
        data = self._run("GET", lambda r: r.get(self._key(key)), None)
        if data is None:
            return NO_VALUE
        return self._loads(key, data)

    def _loads(self, key: str, data: Any) -> Any:
        return self._decode(data)

    def get(self, key: str) -> Any:
        """Return the value of ``key``, or ``None`` on a miss."""
        value = self.lookup(key)
        return None if value is NO_VALUE else value

    def get_many(self, *keys: str) -> list[Any]:
        """One ``MGET`` for all ``keys``; ``None`` for each miss."""
        if not keys:
            return []
        datas = self._run(
            "MGET", lambda r: r.mget([self._key(k) for k in keys]), [None] * len(keys)
        )
        values = []
        for key, data in zip(keys, datas, strict=True):
            value = NO_VALUE if data is None else self._loads(key, data)
            values.append(None if value is NO_VALUE else value)
        return values

    def has(self, key: str) -> bool:
        """One ``EXISTS``."""
        return bool(self._run("EXISTS", lambda r: r.exists(self._key(key)), 0))

    # -- writes ---------------------------------------------------------------------------

    def _write(self, pipe: Any, key: str, data: bytes, ms: int, group: str | None) -> None:
        """Queue the commands that store ``data`` (and track ``key``) on ``pipe``."""
        full = self._key(key)
        if ms < 0:
            pipe.delete(full)
            return
        pipe.set(full, data, px=ms or None)
        if group is not None:
            self._queue_tracking(pipe, full, group, ms)

    def _queue_tracking(self, pipe: Any, full: str, group: str, ms: int) -> None:
        now_ms = int(time.time() * 1000)
        score = now_ms + ms if ms else "+inf"
        pipe.eval(_TRACK, 1, self._tracking_key(group), full, score, now_ms)

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """``SET ... PX``; a serialization error raises and nothing is written."""
        return self._store(key, value, timeout, None)

    def set_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store ``value`` and track ``key`` in ``group``, in one round trip.

        A subclass that overrides :meth:`set` still sees every write: the value then goes
        through its ``set`` and the tracking follows in a second round trip.
        """
        if type(self).set is not RedisCache.set:
            stored = bool(self.set(key, value, timeout))
            if stored and group is not None:
                self._track_written(key, group, self._milliseconds(timeout))
            return stored
        return self._store(key, value, timeout, group)

    def _track_written(self, key: str, group: str, ms: int) -> None:
        def track(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            self._queue_tracking(pipe, self._key(key), group, ms)
            pipe.execute()

        self._run("track", track, None)

    def _store(self, key: str, value: Any, timeout: Timeout, group: str | None) -> bool:
        data = self._dumps(value)
        ms = self._milliseconds(timeout)
        if group is None and ms >= 0:  # a plain write: one SET, no transaction needed
            full = self._key(key)
            return bool(self._run("SET", lambda r: r.set(full, data, px=ms or None), False))

        def write(r: redis.Redis) -> bool:
            pipe = r.pipeline(transaction=True)
            self._write(pipe, key, data, ms, group)
            pipe.execute()
            return True

        return bool(self._run("SET", write, False))

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """``SET ... NX``: store only if ``key`` is absent."""
        data = self._dumps(value)
        ms = self._milliseconds(timeout)
        if ms < 0:
            return not self.has(key)
        return bool(
            self._run(
                "SET NX", lambda r: r.set(self._key(key), data, px=ms or None, nx=True), False
            )
        )

    def set_many(self, mapping: dict[str, Any], timeout: Timeout = None) -> list[Any]:
        """Store every item in one pipelined round trip; return the keys stored."""
        datas = {key: self._dumps(value) for key, value in mapping.items()}
        ms = self._milliseconds(timeout)

        def write(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for key, data in datas.items():
                self._write(pipe, key, data, ms, None)
            pipe.execute()
            return list(datas)

        return list(self._run("SET", write, []))

    def delete(self, key: str) -> bool:
        """``DEL``; True if the key existed."""
        return bool(self._run("DEL", lambda r: r.delete(self._key(key)), 0))

    def delete_many(self, *keys: str) -> list[Any]:
        """Delete ``keys`` in one pipelined round trip (one ``DEL`` each, cluster-safe)."""
        if not keys:
            return []

        def delete(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.delete(self._key(key))
            pipe.execute()
            return list(keys)

        return list(self._run("DEL", delete, []))

    def inc(self, key: str, delta: int = 1) -> int | None:
        """``INCRBY``: atomic, one round trip (integers are stored as plain digits)."""
        result: int | None = self._run(
            "INCRBY", lambda r: int(r.incrby(self._key(key), delta)), None
        )
        return result

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Atomically subtract ``delta``."""
        return self.inc(key, -delta)

    def clear(self) -> bool:
        """Delete every key under ``key_prefix``, found with ``SCAN``, in batches.

        Never ``KEYS``, never ``FLUSHDB``. With an empty prefix, that is every key of the
        database.
        """

        def clear(r: redis.Redis) -> bool:
            batch: list[bytes] = []
            for name in r.scan_iter(match=_escape_glob(self.key_prefix) + "*", count=_CLEAR_BATCH):
                batch.append(name)
                if len(batch) >= _CLEAR_BATCH:
                    _unlink_each(r, batch)
                    batch = []
            _unlink_each(r, batch)
            return True

        return bool(self._run("SCAN/UNLINK", clear, False))

    # -- tracking -------------------------------------------------------------------------

    def clear_tracked(self, group: str) -> int:
        """Delete the keys tracked for ``group`` in batches, then its tracking set."""
        tracking = self._tracking_key(group)

        def clear(r: redis.Redis) -> int:
            removed = 0
            while True:
                members = r.zrange(tracking, 0, _CLEAR_BATCH - 1)
                if not members:
                    break
                pipe = r.pipeline(transaction=True)
                for member in members:
                    pipe.delete(cast(bytes, member))
                pipe.zrem(tracking, *members)
                results = pipe.execute()
                removed += sum(int(n) for n in results[:-1])
            return removed  # the emptied set is gone: Redis deletes empty sorted sets

        return int(self._run("clear_tracked", clear, 0))

    # -- monitoring -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The server's ``INFO`` as a dict (used memory, hits, misses...)."""
        return dict(self._run("INFO", lambda r: r.info(), {}))

    def close(self) -> None:
        """Nothing to do: pools are shared per process and server, and live with it."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._where()}, key_prefix={self.key_prefix!r},"
            f" default_timeout={self.default_timeout})"
        )


def _check_prefix(prefix: str) -> None:
    if not _BALANCED_BRACES.fullmatch(prefix):
        raise ValueError(
            f"key_prefix {prefix!r} has an unmatched brace; braces in a Redis key mark its"
            " cluster hash tag, so use none, or a whole tag such as '{myapp}_'"
        )


def _escape_glob(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _unlink_each(r: redis.Redis, names: list[bytes]) -> None:
    if names:
        pipe = r.pipeline(transaction=False)
        for name in names:  # one key per command: keys of a batch may live in other slots
            pipe.unlink(name)
        pipe.execute()


class RedisCacheNoExceptions(RedisCache):
    """RedisCache that never lets a Redis failure or an unreadable entry reach its caller.

    An entry that cannot be deserialized is deleted, logged once at WARNING with its key and
    the reason, and is a miss. When Redis fails, reads miss, writes and deletes return False,
    and for ``retry_interval`` seconds Redis is not called at all, so callers do not each wait
    for a timeout; the next call after it probes Redis again. Outages are logged when they
    start, at most every ``log_interval`` seconds while they last, and when they end.

    Args:
        retry_interval: Seconds to skip Redis after a failure (default 0.5).
        log_interval: Least seconds between two outage log lines (default 30).
        **kwargs: As for :class:`RedisCache`.
    """

    def __init__(
        self,
        *args: Any,
        retry_interval: float = 0.5,
        log_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        # Set before RedisCache.__init__, whose check_connection may already fail.
        self._retry_interval = retry_interval
        self._log_interval = log_interval
        self._down_until = 0.0
        self._failures = 0
        self._last_log = -math.inf
        self._state_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _run(self, operation: str, action: Callable[[redis.Redis], Any], fallback: Any) -> Any:
        if self._down_until and time.monotonic() < self._down_until:
            return fallback
        try:
            result = action(self.client)
        except ResponseError as exc:
            if isinstance(exc, _SERVER_STATE_ERRORS):
                self._note_failure(operation, exc)
            else:  # about this key only ("not an integer", WRONGTYPE): Redis itself is fine
                logger.warning("Redis %s failed: %s", operation, exc)
            return fallback
        except RedisError as exc:
            self._note_failure(operation, exc)
            return fallback
        if self._down_until:
            self._note_recovery()
        return result

    def _note_failure(self, operation: str, exc: RedisError) -> None:
        now = time.monotonic()
        with self._state_lock:
            self._down_until = now + self._retry_interval
            self._failures += 1
            if now - self._last_log < self._log_interval:
                return
            self._last_log = now
            failures = self._failures
        logger.warning(
            "Redis %s failed on %s (%s: %s); serving without the shared layer, retrying every"
            " %.1fs (%d failures so far)",
            operation,
            self._where(),
            type(exc).__name__,
            exc,
            self._retry_interval,
            failures,
        )

    def _note_recovery(self) -> None:
        with self._state_lock:
            if not self._down_until:
                return
            failures, self._failures, self._down_until = self._failures, 0, 0.0
            self._last_log = -math.inf
        logger.warning("Redis on %s is back after %d failed operations", self._where(), failures)

    def _loads(self, key: str, data: Any) -> Any:
        try:
            return self._decode(data)
        except DeserializationError as exc:
            logger.warning("deleting unreadable Redis entry %r: %s", self._key(key), exc)
            self.delete(key)
            return NO_VALUE


class _LockedComputation(Computation):
    """An ``at_most_once`` computation that holds the key's Redis lock."""

    def __init__(
        self, backend: RedisCacheAtomic, key: str, timeout: Timeout, group: str | None, token: str
    ) -> None:
        super().__init__(backend, key, timeout, group)
        self.atomic = backend
        self.token = token

    def commit(self, value: Any) -> Any:
        """Write ``value`` only if this caller still owns the lock, then release it."""
        return self.atomic._commit_locked(self, value)

    def abort(self) -> None:
        """Release the lock (only if this caller still owns it)."""
        self.atomic._release(self.key, self.token)


class _WatchedComputation(Computation):
    """An ``at_least_once`` computation: the first completed write wins."""

    def __init__(
        self, backend: RedisCacheAtomic, key: str, timeout: Timeout, group: str | None
    ) -> None:
        super().__init__(backend, key, timeout, group)
        self.atomic = backend

    def commit(self, value: Any) -> Any:
        """Store ``value`` unless another caller stored first; return the stored value."""
        return self.atomic._commit_first_wins(self, value)


# Deletes the lock only if it still holds the caller's token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Writes the value (and tracks it) only if the caller still owns the lock, then releases it.
# KEYS: lock, value, tracking set. ARGV: token, data, ms (0 = no expiry), now ms, group flag.
_COMMIT_IF_OWNER = (
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ms = tonumber(ARGV[3])
if ms > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ms)
else
  redis.call('SET', KEYS[2], ARGV[2])
end
if ARGV[5] == '1' then
  local now = tonumber(ARGV[4])
  local score = '+inf'
  if ms > 0 then score = now + ms end
"""
    + _track_lua("KEYS[3]", "KEYS[2]", "score", "now")
    + """
end
redis.call('DEL', KEYS[1])
return 1
"""
)


class RedisCacheAtomic(RedisCacheNoExceptions):
    """RedisCacheNoExceptions that coordinates ``atomic_writes`` across processes and hosts.

    * ``at_least_once``: callers may compute at once; each write is a ``WATCH``/``MULTI``/
      ``EXEC`` transaction that stores only if the key is still absent, so the first
      completed write wins and every caller returns that value. A write makes at most
      ``atomic_retries`` attempts while other writers change the key; a caller whose
      attempts all lost re-reads and returns the stored value.
    * ``at_most_once``: a per-key lock (``SET NX PX`` with a random token) lets one caller
      compute; the others poll for its result for up to ``lock_wait`` seconds, then raise
      :class:`AtomicWaitTimeout`. The lock lives ``lock_timeout`` seconds, so a holder that
      dies loses it and a waiter takes over; a holder that outlived its lock cannot write
      (the write checks ownership in the same script) and is not believed by others.

    A hit takes no lock. If the reply to ``EXEC`` or to the commit script is lost (the
    connection dropped), the outcome is unknown: the caller re-reads the key and returns what
    is stored, or its own value if nothing is. While Redis is unreachable, the backend
    degrades like RedisCacheNoExceptions: the caller computes (one thread per process).

    Args:
        lock_timeout: Seconds an ``at_most_once`` lock lives (``CACHE_ATOMIC_LOCK_TIMEOUT``).
        lock_wait: Longest wait for another caller's result (``CACHE_ATOMIC_WAIT``).
        atomic_retries: Attempts of a watched write (``CACHE_ATOMIC_RETRIES``).
        **kwargs: As for :class:`RedisCacheNoExceptions`.
    """

    coordinates_processes = True
    _poll_interval: ClassVar[float] = 0.01
    _max_poll_interval: ClassVar[float] = 0.1

    def __init__(
        self,
        *args: Any,
        lock_timeout: float = 30.0,
        lock_wait: float = 35.0,
        atomic_retries: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if lock_timeout <= 0 or lock_wait <= 0 or atomic_retries < 1:
            raise ValueError(
                "lock_timeout and lock_wait must be > 0 seconds and atomic_retries >= 1, got"
                f" {lock_timeout!r}, {lock_wait!r}, {atomic_retries!r}"
            )
        self._lock_ms = math.ceil(lock_timeout * 1000)
        self._lock_wait = lock_wait
        self._retries = atomic_retries

    def start_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """Coordinate the computation of a missing ``key`` (see the class docstring)."""
        if mode == "at_least_once":
            return _WatchedComputation(self, key, timeout, group)
        deadline = time.monotonic() + self._lock_wait
        lock = self._lock_key(key)
        for pause in self._pauses(deadline):
            token = secrets.token_hex(16)
            acquired: bool | None = self._run(
                "SET NX (lock)",
                lambda r, t=token: bool(r.set(lock, t, px=self._lock_ms, nx=True)),  # type: ignore[misc]
                None,
            )
            if acquired is None:  # Redis is unreachable: degrade to computing here
                return Computation(self, key, timeout, group)
            if acquired:
                stored = self.lookup(key)  # written between our miss and our lock?
                if stored is not NO_VALUE:
                    self._release(key, token)
                    return Computation(self, key, timeout, group, stored)
                return _LockedComputation(self, key, timeout, group, token)
            stored = self.lookup(key)
            if stored is not NO_VALUE:
                return Computation(self, key, timeout, group, stored)
            time.sleep(pause)
        raise AtomicWaitTimeout(
            f"waited {self._lock_wait:.1f}s for another caller to compute {key!r}"
            " (at_most_once) without a result; raise CACHE_ATOMIC_WAIT if computations take"
            " longer, or CACHE_ATOMIC_LOCK_TIMEOUT if the holder's lock expires first"
        )

    def _pauses(self, deadline: float) -> Iterator[float]:
        pause = self._poll_interval
        while time.monotonic() < deadline:
            yield min(pause, max(0.0, deadline - time.monotonic()))
            pause = min(pause * 2, self._max_poll_interval)

    def _release(self, key: str, token: str) -> None:
        lock = self._lock_key(key)
        self._run("release lock", lambda r: r.eval(_RELEASE, 1, lock, token), None)

    def _commit_locked(self, computation: _LockedComputation, value: Any) -> Any:
        key, group = computation.key, computation.group
        data = self._dumps(value)
        ms = max(0, self._milliseconds(computation.timeout))
        full = self._key(key)
        # Without a group the script touches no tracking set: the value key stands in, so
        # every key of the call stays in one cluster slot.
        tracking = self._tracking_key(group) if group is not None else full
        keys = [self._lock_key(key), full, tracking]
        args: list[Any] = [
            computation.token,
            data,
            ms,
            int(time.time() * 1000),
            int(group is not None),
        ]
        # Running the script twice is safe: once it has run, the lock is gone and a second
        # run writes nothing. So a lost reply is answered by running it again.
        for _ in range(2):
            try:
                if self.client.eval(_COMMIT_IF_OWNER, 3, *keys, *args):
                    return value
                break  # the lock is no longer ours: trust what is stored
            except RedisError as exc:
                self._note_failure("commit (lock owner)", exc)
        return self._stored_or(key, value)

    def _commit_first_wins(self, computation: _WatchedComputation, value: Any) -> Any:
        key, group = computation.key, computation.group
        data = self._dumps(value)
        ms = self._milliseconds(computation.timeout)
        full = self._key(key)

        def write(r: redis.Redis) -> Any:
            with r.pipeline(transaction=True) as pipe:
                for _ in range(self._retries):
                    try:
                        pipe.watch(full)  # type: ignore[no-untyped-call]
                        existing = pipe.get(full)
                        if existing is not None:
                            pipe.unwatch()
                            return existing
                        pipe.multi()
                        self._write(pipe, key, data, ms, group)
                        pipe.execute()
                        return data
                    except WatchError:
                        continue
            return None  # every attempt lost a race

        stored = self._run("WATCH/MULTI/EXEC", write, NO_VALUE)
        if stored is NO_VALUE or stored is None:  # lost reply, Redis down, or retries used up
            return self._stored_or(key, value)
        if stored is data:
            return value
        winner = self._loads(key, stored)
        return value if winner is NO_VALUE else winner

    def _stored_or(self, key: str, value: Any) -> Any:
        """Return what is stored under ``key``, or ``value`` if nothing is.

        One real ``GET``, whatever the back-off says: an unknown outcome deserves a look.
        ``value`` also when Redis cannot answer.
        """
        try:
            data = self.client.get(self._key(key))
        except RedisError:
            return value
        if data is None:
            return value
        stored = self._loads(key, data)
        return value if stored is NO_VALUE else stored
