"""RedisCacheNoExceptions: RedisCache that never lets Redis break its caller."""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MaxConnectionsError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from stratacache import renew_in_child
from stratacache.options import OptionsError
from stratacache_plugins.rediscache.cache import RedisCache
from stratacache_plugins.rediscache.client import REDIS_FAILURES, RedisFailure
from stratacache_plugins.rediscache.options import RedisCacheNoExceptionsOptions
from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = ["RedisCacheNoExceptions"]

logger = logging.getLogger(__package__)  # one logger for the Redis backends

# Error replies that say the server cannot serve now (so it is skipped for a back-off), as
# opposed to replies about one key, value or command. OOM is of the second kind: under
# maxmemory with noeviction, Redis refuses the writes that need memory and serves the rest.
# CLUSTERDOWN (and MASTERDOWN, its subclass) is of the first: redis-py sleeps 0.25 s on it
# before raising, so without a back-off every call paid that while a cluster was down.
_SERVER_STATE_ERRORS = (BusyLoadingError, ReadOnlyError, ClusterDownError)

# Redis answers a bulk string longer than its proto-max-bulk-len (1 MiB at the least) by
# closing the connection. A write at least this big that loses its connection may have been
# refused for its size: if Redis answers a PING at once, that is what happened.
_SMALLEST_BULK_LIMIT = 1024 * 1024


class RedisCacheNoExceptions(RedisCache):
    """RedisCache that never lets a Redis failure or an unreadable entry reach its caller.

    An entry that cannot be deserialized is deleted, logged once at WARNING with its key and
    the reason, and is a miss. When Redis fails, reads miss, writes and deletes return False,
    and for ``retry_interval`` seconds (up to a quarter more, at random) Redis is not called
    at all, so callers do not each wait for a timeout; then one thread per process probes
    Redis, and the others skip it until that probe has its answer. An error about one call (an
    error reply about its key or value, ``OOM``, a value over the server's size limit, a
    Cluster slot that kept redirecting it while it migrated) is not an outage: that call
    fails, and Redis stays in use. Outages are logged when they start, at most every
    ``log_interval`` seconds while they last, and when they end; errors about one call at
    most every ``log_interval`` seconds. Each failed or skipped operation
    counts in ``stats.errors``, each unreadable entry in ``stats.deserialization_failures``.
    In a stack, the deletes and clears that failed are replayed once Redis is back
    (``degrades``: see :mod:`stratacache.recovery`).

    Args:
        retry_interval: Seconds to skip Redis after a failure (default 0.5; 0 to 3600).
        log_interval: Least seconds between two outage log lines (default 30; 0 to 86400).
        **kwargs: As for :class:`RedisCache`.
    """

    options_model = RedisCacheNoExceptionsOptions
    degrades = True
    _drops_unreadable = True

    def __init__(
        self,
        *args: Any,
        retry_interval: float = 0.5,
        log_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        arguments = {"retry_interval": retry_interval, "log_interval": log_interval}
        rejected = RedisCacheNoExceptionsOptions.argument_problems(arguments)
        if rejected:  # a back-off of "2" would raise only once Redis fails
            raise OptionsError.refusing(rejected)
        # Set before RedisCache.__init__, whose check_connection may already fail.
        self._retry_interval = retry_interval
        self._log_interval = log_interval
        self._down_until = 0.0
        self._prober = 0  # the pid of the process one of whose threads probes Redis now
        self._failures = 0
        self._last_log = -math.inf
        self._call_errors = 0
        self._last_call_log = -math.inf
        self._state_lock = threading.Lock()
        renew_in_child(self, "_state_lock")
        super().__init__(*args, **kwargs)

    def _run(
        self,
        operation: str,
        action: Callable[[RedisLike], Any],
        fallback: Any,
        *,
        payload: int = 0,
    ) -> Any:
        probing = self._down_until and self._claim_probe()
        if probing is None:
            self.stats.errors += 1  # skipped during the back-off, or while another probes
            return fallback
        try:
            result = action(self.client)
        except REDIS_FAILURES as exc:
            self._note_error(operation, exc, payload)
            return fallback
        finally:
            if probing:
                self._prober = 0
        if self._down_until:
            self._note_recovery()
        return result

    async def _arun(
        self,
        operation: str,
        action: Callable[[Any], Any],
        fallback: Any,
        *,
        payload: int = 0,
    ) -> Any:
        """:meth:`_run` on this event loop's client: the same back-off, the same fallbacks.

        A cancelled caller that was probing hands the probe back (``finally``).
        """
        probing = self._down_until and self._claim_probe()
        if probing is None:
            self.stats.errors += 1
            return fallback
        try:
            result = await self._acall(action)
        except REDIS_FAILURES as exc:
            answers = await self._aanswers() if self._maybe_too_large(exc, payload) else None
            self._note_error(operation, exc, payload, answers=answers)
            return fallback
        finally:
            if probing:
                self._prober = 0
        if self._down_until:
            self._note_recovery()
        return result

    async def _aanswers(self) -> bool:
        """Whether Redis answers a ``PING`` now (see :meth:`_about_the_call`)."""
        try:
            return bool(await self._acall(lambda r: r.ping()))
        except REDIS_FAILURES:
            return False

    def _claim_probe(self) -> bool | None:
        """During an outage: True if this thread is to probe Redis, None to skip it.

        After the back-off, one thread per process probes; the others skip until it has
        its answer (a new back-off, or Redis back).
        """
        if time.monotonic() < self._down_until:
            return None
        pid = os.getpid()  # a prober inherited across fork() probes nothing in the child
        with self._state_lock:
            if self._prober == pid:
                return None
            self._prober = pid
        return True

    def store_down(self) -> bool:
        """Whether Redis counts as down now (auto-recovery's ``OutageAware``).

        A write that failed while it is re-checks the local copies above once Redis is back;
        one Redis refused while it answers (``OOM``, an error about the call) does not.
        """
        return self._known_down()

    def _known_down(self) -> bool:
        """Whether Redis is in its back-off, or being probed by another thread."""
        if not self._down_until:
            return False
        return time.monotonic() < self._down_until or self._prober == os.getpid()

    def _note_error(
        self, operation: str, exc: RedisFailure, payload: int = 0, *, answers: bool | None = None
    ) -> bool:
        """Count a failed call that sent ``payload`` bytes; return whether it was an outage.

        An outage starts the back-off; an error about the call itself does not. ``answers``
        is whether Redis answered a ``PING`` after the failure, when the caller asked
        (:meth:`_maybe_too_large`); ``None`` to ask it here, synchronously.
        """
        if self._about_the_call(exc, payload, answers):
            self._note_call_error(operation, exc)
            return False
        self._note_failure(operation, exc)
        return True

    def _about_the_call(self, exc: RedisFailure, payload: int, answers: bool | None) -> bool:
        """Whether ``exc`` is about one call (its key or value), not about Redis."""
        if isinstance(exc, ResponseError):  # "not an integer", WRONGTYPE, OOM, too large...
            return not isinstance(exc, _SERVER_STATE_ERRORS)
        if isinstance(exc, MaxConnectionsError | ClusterError):
            # A pool whose connections were all busy for a whole connect and read timeout
            # (a burst; see the asyncio pools), or redis-py's "TTL exhausted": its key's
            # slot kept redirecting it (ASK, MOVED, TRYAGAIN while the slot migrates). The
            # call fails; Redis, or the cluster's other slots, still serve.
            return True
        if self._maybe_too_large(exc, payload):
            if answers is not None:
                return answers
            try:  # the server may have hung up on this value only
                return bool(self.client.ping())
            except REDIS_FAILURES:
                return False
        return False

    @staticmethod
    def _maybe_too_large(exc: RedisFailure, payload: int) -> bool:
        """Whether a lost connection may be Redis refusing a value over its size limit."""
        return isinstance(exc, RedisConnectionError) and payload >= _SMALLEST_BULK_LIMIT

    def _note_call_error(self, operation: str, exc: RedisFailure) -> None:
        self.stats.errors += 1
        now = time.monotonic()
        with self._state_lock:
            self._call_errors += 1
            if now - self._last_call_log < self._log_interval:
                return
            self._last_call_log = now
            count, self._call_errors = self._call_errors, 0
        logger.warning(
            "Redis %s failed on %s (%s: %s); Redis itself answers, so it stays in use"
            " (%d such errors since the last report)",
            operation,
            self._where(),
            type(exc).__name__,
            exc,
            count,
        )

    def _note_failure(self, operation: str, exc: RedisFailure) -> None:
        self.stats.errors += 1
        now = time.monotonic()
        with self._state_lock:
            # Jittered, so the processes of a service do not all probe at the same moment.
            jitter = random.uniform(1.0, 1.25)
            self._down_until = now + self._retry_interval * jitter
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
