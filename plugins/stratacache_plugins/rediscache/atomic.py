"""RedisCacheAtomic: ``atomic_writes`` coordinated across processes and hosts."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from stratacache import NO_VALUE, CacheError, Computation, Timeout
from stratacache.options import OptionsError
from stratacache_plugins.rediscache.client import REDIS_FAILURES
from stratacache_plugins.rediscache.noexceptions import RedisCacheNoExceptions
from stratacache_plugins.rediscache.options import RedisCacheAtomicOptions
from stratacache_plugins.rediscache.protocol import RedisLike
from stratacache_plugins.rediscache.scripts import COMMIT_IF_OWNER, RELEASE

__all__ = ["AtomicWaitTimeout", "RedisCacheAtomic"]


class AtomicWaitTimeout(CacheError, TimeoutError):  # noqa: N818 (reads as what happened)
    """An ``at_most_once`` caller waited ``lock_wait`` seconds for another's result in vain."""


class _LockedComputation(Computation):
    """An ``at_most_once`` computation that holds the key's Redis lock."""

    def __init__(  # noqa: PLR0917 (an internal constructor)
        self,
        backend: RedisCacheAtomic,
        key: str,
        timeout: Timeout,
        group: str | None,
        token: str,
        waited: bool,
    ) -> None:
        super().__init__(backend, key, timeout, group, waited=waited)
        self.atomic = backend
        self.token = token
        self.released = False

    def commit(self, value: Any) -> Any:
        """Write ``value`` only if this caller still owns the lock, then release it."""
        return self.atomic._commit_locked(self, value)

    def abort(self) -> None:
        """Release the lock (only if this caller still owns it), once."""
        if not self.released:
            self.released = True
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
    options_model = RedisCacheAtomicOptions
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
        arguments = {
            "lock_timeout": lock_timeout,
            "lock_wait": lock_wait,
            "atomic_retries": atomic_retries,
        }
        rejected = RedisCacheAtomicOptions.argument_problems(arguments)
        if rejected:  # finite and bounded: an infinite lock cannot be set in milliseconds
            raise OptionsError.refusing(rejected)
        super().__init__(*args, **kwargs)
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
        waited = False  # counted once per wait in stats.lock_waits, however many polls
        for pause in self._pauses(deadline):
            token = secrets.token_hex(16)
            acquired: bool | None = self._run(
                "SET NX (lock)",
                lambda r, t=token: bool(r.set(lock, t, px=self._lock_ms, nx=True)),  # type: ignore[misc]
                None,
            )
            if acquired is None:  # Redis is unreachable: degrade to computing here
                return Computation(self, key, timeout, group, waited=waited)
            if acquired:
                try:
                    stored = self.lookup(key)  # written between our miss and our lock?
                except BaseException:
                    self._release(key, token)
                    raise
                if stored is not NO_VALUE:
                    self._release(key, token)
                    return Computation(self, key, timeout, group, stored, waited=waited)
                return _LockedComputation(self, key, timeout, group, token, waited)
            stored = self.lookup(key)
            if stored is not NO_VALUE:
                return Computation(self, key, timeout, group, stored, waited=waited)
            if not waited:
                waited = True
                self.stats.lock_waits += 1
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
        self._run("release lock", lambda r: r.eval(RELEASE, 1, lock, token), None)

    def _commit_locked(self, computation: _LockedComputation, value: Any) -> Any:
        key, group = computation.key, computation.group
        try:
            data = self._dumps(key, value)
        except BaseException:  # not storable: the next caller computes at once
            computation.abort()
            raise
        ms = max(0, self._milliseconds(computation.timeout))
        full = self._key(key)
        # Without a group the script touches no tracking set: the value key stands in, so
        # every key of the call stays in one cluster slot.
        tracking = self._tracking_key(group) if group is not None else full
        keys = [self._lock_key(key), full, tracking]
        args: list[Any] = [computation.token, data, ms, int(group is not None)]
        # Running the script twice is safe: once it has run, the lock is gone and a second
        # run writes nothing. So a lost reply is answered by running it again; a reply that
        # timed out is not: the commit waits at most one read timeout (plus the dropped
        # connections' moments), not one per attempt.
        for _ in range(2):
            try:
                if self.client.eval(COMMIT_IF_OWNER, 3, *keys, *args):
                    computation.stored = True
                    return value
                break  # the lock is no longer ours: trust what is stored
            except REDIS_FAILURES as exc:
                if not self._note_error("commit (lock owner)", exc, len(data)):
                    # Refused (too large, OOM), not lost: release the lock for the next caller.
                    computation.abort()
                    return value
                if isinstance(exc, RedisTimeoutError):
                    return value
        return self._stored_or(key, value)

    def _commit_first_wins(self, computation: _WatchedComputation, value: Any) -> Any:
        key, group = computation.key, computation.group
        data = self._dumps(key, value)
        if self._known_down():  # no write and no re-read while Redis is known to be down
            self.stats.errors += 1
            return value
        ms = self._milliseconds(computation.timeout)
        full = self._key(key)

        def write(r: RedisLike) -> Any:
            with r.pipeline(transaction=True) as pipe:
                for _ in range(self._retries):
                    try:
                        pipe.watch(full)
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

        stored = self._run("WATCH/MULTI/EXEC", write, NO_VALUE, payload=len(data))
        if stored is NO_VALUE or stored is None:  # lost reply, Redis down, or retries used up
            return self._stored_or(key, value)
        if stored is data:
            computation.stored = True
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
        except REDIS_FAILURES:
            self.stats.errors += 1
            return value
        if data is None:
            return value
        stored = self._loads(key, data)
        return value if stored is NO_VALUE else stored
