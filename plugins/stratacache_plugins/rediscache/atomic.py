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
from stratacache_plugins.rediscache.client import REDIS_FAILURES, RedisFailure
from stratacache_plugins.rediscache.locking import (
    DOWN,
    Down,
    LockedComputation,
    WatchedComputation,
)
from stratacache_plugins.rediscache.noexceptions import RedisCacheNoExceptions, logger
from stratacache_plugins.rediscache.options import RedisCacheAtomicOptions
from stratacache_plugins.rediscache.plans import (
    Call,
    Decode,
    Direct,
    Failed,
    Plan,
    Read,
    Sleep,
    arun_plan,
    run_plan,
)
from stratacache_plugins.rediscache.protocol import RedisLike
from stratacache_plugins.rediscache.refreshing import RefreshLocks
from stratacache_plugins.rediscache.scripts import ACQUIRE, COMMIT_IF_OWNER, RELEASE
from stratacache_plugins.rediscache.tags import Tagging, registry_key

__all__ = ["AtomicWaitTimeout", "RedisCacheAtomic"]


class AtomicWaitTimeout(CacheError, TimeoutError):  # noqa: N818 (reads as what happened)
    """An ``at_most_once`` caller waited ``lock_wait`` seconds for another's result in vain."""


class RedisCacheAtomic(RefreshLocks, RedisCacheNoExceptions):
    """RedisCacheNoExceptions that coordinates ``atomic_writes`` across processes and hosts.

    * ``at_least_once``: callers may compute at once; each write is a ``WATCH``/``MULTI``/
      ``EXEC`` transaction that stores only if the key is still absent, so the first
      completed write wins and every caller returns that value. A write makes at most
      ``atomic_retries`` attempts while other writers change the key; a caller whose
      attempts all lost re-reads and returns the stored value.
    * ``at_most_once``: a per-key lock (a random token set if the key is free) lets one
      caller compute; the others poll for its result for up to ``lock_wait`` seconds, then
      raise :class:`AtomicWaitTimeout`. The lock lives ``lock_timeout`` seconds, so a holder
      that dies loses it and a waiter takes over. A caller asks with one token for its whole
      wait, so a lock taken by a request whose reply it never saw is recognized as its own.

    What ``at_most_once`` holds under trouble:

    * A reply slower than the read timeout, or writes paused (``CLIENT PAUSE WRITE``): not an
      outage. The caller keeps asking for the lock and polling for the result, within
      ``outage_after``: one computation, one result.
    * Redis refuses (connection refused, ``LOADING``, ``READONLY``, ``OOM`` on the lock), or
      answers no lock request for ``outage_after`` seconds (3 by default): an outage. The
      caller computes without the lock (one thread per process), as RedisCacheNoExceptions
      degrades; once Redis has been silent that long, later callers compute at once until it
      answers again.
    * The lock is gone before its holder commits (evicted under ``maxmemory``, or expired: the
      computation outlived ``lock_timeout``): one more caller may compute, once per lost lock.
      The commit still lets one value win: a holder without its lock stores only if no value
      is stored and no other caller holds the lock; else it returns the stored value, or waits
      (``lock_wait`` at most) for the new holder's. Each lost lock is counted in
      :attr:`lost_locks` and logged; a server that may evict keys is named in a warning at the
      first ``at_most_once`` miss (``maxmemory-policy noeviction`` keeps locks).

    A hit takes no lock. If the reply to ``EXEC`` or to the commit script is lost (the
    connection dropped), the outcome is unknown: the caller re-reads the key and returns what
    is stored, or its own value if nothing is. A commit whose reply times out is not retried
    (the caller waits one read timeout at most); if Redis dropped it, the lock lives out its
    TTL. While Redis is unreachable, the backend degrades like RedisCacheNoExceptions: the
    caller computes (one thread per process).

    Args:
        lock_timeout: Seconds an ``at_most_once`` lock lives (``CACHE_ATOMIC_LOCK_TIMEOUT``).
        lock_wait: Longest wait for another caller's result (``CACHE_ATOMIC_WAIT``).
        outage_after: Seconds without an answer to a lock request after which Redis counts
            as down (``CACHE_ATOMIC_OUTAGE_AFTER``; at most ``lock_wait``).
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
        outage_after: float = 3.0,
        atomic_retries: int = 5,
        **kwargs: Any,
    ) -> None:
        arguments = {
            "lock_timeout": lock_timeout,
            "lock_wait": lock_wait,
            "outage_after": outage_after,
            "atomic_retries": atomic_retries,
        }
        rejected = RedisCacheAtomicOptions.argument_problems(arguments)
        if rejected:  # finite and bounded: an infinite lock cannot be set in milliseconds
            raise OptionsError.refusing(rejected)
        super().__init__(*args, **kwargs)
        self._lock_ms = math.ceil(lock_timeout * 1000)
        self._lock_wait = lock_wait
        self._outage_after = min(outage_after, lock_wait)
        self._retries = atomic_retries
        self._unanswered_since: float | None = None  # lock requests unanswered since then
        self._timed_out = False  # whether the last outage began with a timeout
        self._policy_checked = False
        self.lost_locks = 0
        """Holders whose lock was gone (evicted, or expired) when they committed."""

    def start_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """Coordinate the computation of a missing ``key`` (see the class docstring)."""
        if mode == "at_least_once":
            return WatchedComputation(self, key, timeout, group)
        return run_plan(self, self._start_locked(key, timeout, group))

    async def astart_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """:meth:`start_computation`, awaited: a wait for the lock holds no thread."""
        if mode == "at_least_once":
            return WatchedComputation(self, key, timeout, group)
        return await arun_plan(self, self._start_locked(key, timeout, group))

    def _start_locked(self, key: str, timeout: Timeout, group: str | None) -> Plan[Computation]:
        """Take the lock of ``key``, or wait for its holder's value (``at_most_once``)."""
        yield from self._check_eviction_policy()
        started = time.monotonic()
        deadline = started + self._lock_wait
        token = secrets.token_hex(16)  # one token per wait: a lost request's lock is ours
        waited = False  # counted once per wait in stats.lock_waits, however many polls
        acquired: bool | Down | None = None
        try:
            for pause in self._pauses(deadline):
                acquired = yield from self._acquire(key, token)
                if acquired is DOWN:  # refused, or unanswered for lock_wait: compute here
                    return Computation(self, key, timeout, group, waited=waited)
                if acquired is True:
                    stored = yield Read(key)  # written between our miss and our lock?
                    if stored is not NO_VALUE:
                        yield from self._release(key, token)
                        return Computation(self, key, timeout, group, stored, waited=waited)
                    return LockedComputation(self, key, timeout, group, token, waited)
                stored = yield Read(key)  # another holds the lock, or Redis did not answer
                if stored is not NO_VALUE:
                    return Computation(self, key, timeout, group, stored, waited=waited)
                if not waited:
                    waited = True
                    self.stats.lock_waits += 1
                yield Sleep(pause)
        except GeneratorExit:
            raise
        except BaseException:
            # Cancelled or failed while we may hold the lock (a request whose reply never
            # came may have taken it): release it, which frees only a lock with our token.
            yield from self._release(key, token)
            raise
        if acquired is None:  # Redis stopped answering, not a slow holder: compute here
            return Computation(self, key, timeout, group, waited=waited)
        raise AtomicWaitTimeout(
            f"waited {self._lock_wait:.1f}s for another caller to compute {key!r}"
            " (at_most_once) without a result; raise CACHE_ATOMIC_WAIT if computations take"
            " longer, or CACHE_ATOMIC_LOCK_TIMEOUT if the holder's lock expires first"
        )

    def _acquire(self, key: str, token: str) -> Plan[bool | Down | None]:
        """Ask for the lock of ``key`` with ``token``.

        True: the caller holds it. False: another caller does. None: no answer (the reply
        timed out, or Redis is skipped after a timeout): the caller may hold it, and keeps
        asking with the same token. :data:`DOWN`: Redis refused (it is down, or refused this
        write), or has answered no lock request for ``outage_after`` seconds: compute here.
        """
        lock = self._lock_key(key)
        ms = self._lock_ms
        reply = yield Call("lock", lambda r: r.eval(ACQUIRE, 1, lock, token, ms), None)
        if reply is not None:
            self._unanswered_since = None
            return bool(reply)
        if not self._down_until or not self._timed_out:  # refused, OOM, LOADING, ...
            return DOWN
        now = time.monotonic()
        if self._unanswered_since is None:
            self._unanswered_since = now
        return DOWN if now - self._unanswered_since >= self._outage_after else None

    def _note_failure(self, operation: str, exc: RedisFailure) -> None:
        self._timed_out = isinstance(exc, RedisTimeoutError)
        super()._note_failure(operation, exc)

    def _note_recovery(self) -> None:
        self._unanswered_since = None
        super()._note_recovery()

    def _check_eviction_policy(self) -> Plan[None]:
        """Warn once if the server may evict the locks (``maxmemory`` with a policy)."""
        if self._policy_checked or self._known_down():
            return
        self._policy_checked = True
        try:
            memory = yield Direct(lambda r: r.info("memory"))
        except REDIS_FAILURES:  # INFO refused (an ACL) or no answer: nothing to tell
            return
        if not int(memory.get("maxmemory", 0)):
            return
        policy = memory.get("maxmemory_policy", "?")
        if policy != "noeviction":
            logger.warning(
                "Redis on %s evicts keys (maxmemory %s, maxmemory-policy %s), at_most_once"
                " locks included: an evicted lock lets one more caller compute (every caller"
                " still gets the first value committed); set maxmemory-policy noeviction to"
                " keep locks, or give Redis the memory to evict nothing",
                self._where(),
                memory.get("maxmemory"),
                policy,
            )

    def _pauses(self, deadline: float) -> Iterator[float]:
        pause = self._poll_interval
        while time.monotonic() < deadline:
            yield min(pause, max(0.0, deadline - time.monotonic()))
            pause = min(pause * 2, self._max_poll_interval)

    def _release(self, key: str, token: str) -> Plan[None]:
        lock = self._lock_key(key)
        yield Call("release lock", lambda r: r.eval(RELEASE, 1, lock, token), None)

    def _commit_locked(self, computation: LockedComputation, value: Any) -> Plan[Any]:
        key, group = computation.key, computation.group
        try:
            data = self._dumps(key, value)
        except BaseException:  # not storable: the next caller computes at once
            yield from computation._releasing()
            raise
        ms = max(0, self._milliseconds(computation.timeout))
        full = self._key(key)
        # Without a group the script touches no tracking set: the value key stands in, so
        # every key of the call stays in one cluster slot. The tag sets share it too; the
        # set of tagged functions has a slot of its own, so it is joined first.
        tracking = self._tracking_key(group) if group is not None else full
        tagging = Tagging(self.key_prefix, full, group, computation.tags, ms)
        if tagging.names:
            registry = registry_key(self.key_prefix)
            yield Call("tag", lambda r: r.sadd(registry, tagging.group), None)
        keys = [self._lock_key(key), full, tracking, *tagging.names]
        args: list[Any] = [computation.token, data, ms, int(group is not None)]
        deadline = time.monotonic() + self._lock_wait
        # Running the script twice is safe: once it has run, the lock is gone and the value
        # stored, and a second run writes nothing. So a lost reply is answered by running it
        # again; a reply that timed out is not: the commit waits at most one read timeout
        # (plus the dropped connections' moments), not one per attempt.
        lost = 0
        try:
            for pause in self._pauses(deadline):
                try:
                    outcome = int(
                        (
                            yield Direct(
                                lambda r: self._announced(
                                    r,
                                    (key,),
                                    lambda c: c.eval(COMMIT_IF_OWNER, len(keys), *keys, *args),
                                    group,
                                )
                            )
                        )
                    )
                except REDIS_FAILURES as exc:
                    if not (yield Failed("commit (lock owner)", exc, len(data))):
                        # Refused (too large, OOM), not lost: release it for the next caller.
                        yield from computation._releasing()
                        return value
                    if isinstance(exc, RedisTimeoutError):
                        return value
                    lost += 1
                    if lost > 1:
                        break
                    continue
                if outcome in (1, 2):
                    computation.stored = True
                    computation.released = True  # the script deleted it
                    if outcome == 2:
                        self._note_lost_lock(computation)
                    return value
                if outcome == 3:  # another caller's value is stored: every caller returns it
                    return (yield from self._stored_or(key, value))
                yield Sleep(pause)  # another caller computes under a newer lock: its value
        except GeneratorExit:
            raise
        except BaseException:  # cancelled mid-commit: free the lock if the script did not
            yield from computation._releasing()
            raise
        return (yield from self._stored_or(key, value))

    def _note_lost_lock(self, computation: LockedComputation) -> None:
        """Count and log a holder whose lock was gone when it committed."""
        held = time.monotonic() - computation.locked_at
        self.lost_locks += 1
        cause = (
            f"it expired: the computation took {held:.1f}s, longer than"
            f" CACHE_ATOMIC_LOCK_TIMEOUT={self._lock_ms / 1000:g}"
            if held * 1000 >= self._lock_ms
            else f"it was evicted or deleted after {held:.1f}s, before its"
            f" CACHE_ATOMIC_LOCK_TIMEOUT={self._lock_ms / 1000:g}s (maxmemory-policy"
            " noeviction keeps locks)"
        )
        logger.warning(
            "the at_most_once lock of %r on %s was gone when its holder committed (%s);"
            " no other caller held it, so the value is stored (%d lost locks so far)",
            computation.key,
            self._where(),
            cause,
            self.lost_locks,
        )

    def _commit_first_wins(self, computation: WatchedComputation, value: Any) -> Any:
        key, group = computation.key, computation.group
        data = self._dumps(key, value)
        if self._known_down():  # no write and no re-read while Redis is known to be down
            self.stats.errors += 1
            return value
        ms = self._milliseconds(computation.timeout)
        full = self._key(key)
        tagging = Tagging(self.key_prefix, full, group, computation.tags, ms)

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
                        self._queue_keys(pipe, (key,), group)
                        tagging.queue(r, pipe)
                        pipe.execute()
                        self._after_keys(r, (key,), group)
                        return data
                    except WatchError:
                        continue
            return None  # every attempt lost a race

        stored = self._run("WATCH/MULTI/EXEC", write, NO_VALUE, payload=len(data))
        if stored is NO_VALUE or stored is None:  # lost reply, Redis down, or retries used up
            return run_plan(self, self._stored_or(key, value))
        if stored is data:
            computation.stored = True
            return value
        winner = self._loads(key, stored)
        return value if winner is NO_VALUE else winner

    def _stored_or(self, key: str, value: Any) -> Plan[Any]:
        """Return what is stored under ``key``, or ``value`` if nothing is.

        One real ``GET``, whatever the back-off says: an unknown outcome deserves a look.
        ``value`` also when Redis cannot answer.
        """
        full = self._key(key)
        try:
            data = yield Direct(lambda r: r.get(full))
        except REDIS_FAILURES:
            self.stats.errors += 1
            return value
        if data is None:
            return value
        stored = yield Decode(key, data)
        return value if stored is NO_VALUE else stored
