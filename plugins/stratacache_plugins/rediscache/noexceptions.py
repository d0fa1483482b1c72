"""RedisCacheNoExceptions: RedisCache that never lets Redis break its caller."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import (
    BusyLoadingError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)

from stratacache import NO_VALUE, DeserializationError
from stratacache.options import OptionsError
from stratacache_plugins.rediscache.cache import RedisCache
from stratacache_plugins.rediscache.options import RedisCacheNoExceptionsOptions

__all__ = ["RedisCacheNoExceptions"]

logger = logging.getLogger(__package__)  # one logger for the Redis backends

# Error replies that say the server cannot serve now (so it is skipped for a back-off), as
# opposed to replies about one key or command.
_SERVER_STATE_ERRORS = (BusyLoadingError, OutOfMemoryError, ReadOnlyError)


class RedisCacheNoExceptions(RedisCache):
    """RedisCache that never lets a Redis failure or an unreadable entry reach its caller.

    An entry that cannot be deserialized is deleted, logged once at WARNING with its key and
    the reason, and is a miss. When Redis fails, reads miss, writes and deletes return False,
    and for ``retry_interval`` seconds Redis is not called at all, so callers do not each wait
    for a timeout; the next call after it probes Redis again. Outages are logged when they
    start, at most every ``log_interval`` seconds while they last, and when they end. Each
    failed or skipped operation counts in ``stats.errors``, each unreadable entry in
    ``stats.deserialization_failures``.

    Args:
        retry_interval: Seconds to skip Redis after a failure (default 0.5; 0 to 3600).
        log_interval: Least seconds between two outage log lines (default 30; 0 to 86400).
        **kwargs: As for :class:`RedisCache`.
    """

    options_model = RedisCacheNoExceptionsOptions

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
        self._failures = 0
        self._last_log = -math.inf
        self._state_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _run(self, operation: str, action: Callable[[redis.Redis], Any], fallback: Any) -> Any:
        if self._down_until and time.monotonic() < self._down_until:
            self.stats.errors += 1  # skipped during the back-off
            return fallback
        try:
            result = action(self.client)
        except ResponseError as exc:
            if isinstance(exc, _SERVER_STATE_ERRORS):
                self._note_failure(operation, exc)
            else:  # about this key only ("not an integer", WRONGTYPE): Redis itself is fine
                self.stats.errors += 1
                logger.warning("Redis %s failed: %s", operation, exc)
            return fallback
        except RedisError as exc:
            self._note_failure(operation, exc)
            return fallback
        if self._down_until:
            self._note_recovery()
        return result

    def _note_failure(self, operation: str, exc: RedisError) -> None:
        self.stats.errors += 1
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
            return self._decode(key, data)
        except DeserializationError as exc:
            self.stats.deserialization_failures += 1
            logger.warning("deleting unreadable Redis entry %r: %s", self._key(key), exc)
            self.delete(key)
            return NO_VALUE
