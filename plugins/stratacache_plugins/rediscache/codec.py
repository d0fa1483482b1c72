"""How the Redis backends store values: integers as plain digits, the rest serialized.

Digits let ``INCRBY`` work on counters, as in cachelib; every other value goes to the
serializer. Only the integers ``INCRBY`` can count with, signed 64-bit ones, are stored as
digits: at most 20 characters, which every Python reads back whatever its limit on
integer conversion (``sys.set_int_max_str_digits``, 640 digits at the least). A larger
integer is serialized like any other value, so ``10**5000`` is cached and read back, not
refused by ``str()``. Stored digits that ``int()`` refuses (written by another client) are
an unreadable entry, like bytes the serializer cannot read.

With a secret key every value, integers included, is serialized and signed under its key's
full name, so that a signed entry copied under another prefix does not verify.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

import redis

from stratacache import NO_VALUE, DeserializationError
from stratacache_plugins.rediscache.naming import RedisKeys
from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = ["RedisCodec"]

logger = logging.getLogger(__package__)  # one logger for the Redis backends

_INTEGER = re.compile(rb"-?[0-9]+")
_DIGIT_STARTS = frozenset(b"-0123456789"[i : i + 1] for i in range(11))
_COUNTER_MIN, _COUNTER_MAX = -(2**63), 2**63 - 1  # the integers INCRBY counts with
_SIGNED_INC_ATTEMPTS = 100


class RedisCodec(RedisKeys):
    """Base of the Redis backends: a value to the bytes of its key, and back."""

    def _dumps(self, key: str, value: Any) -> bytes:
        """Serialize ``value``; integers are stored as plain digits, as cachelib does.

        Digits let ``INCRBY`` work on counters; every other value, a larger integer included,
        goes to the serializer. With a secret key every value is serialized and signed.
        """
        if self.signer is None:
            if type(value) is int and _COUNTER_MIN <= value <= _COUNTER_MAX:
                return b"%d" % value
            return self.dump_value(key, value)
        return self.dump_value(self._key(key), value)  # signed under its full name

    def _decode(self, key: str, data: bytes) -> Any:
        if self.signer is not None:
            return self.load_value(self._key(key), data)
        if data[:1] in _DIGIT_STARTS and _INTEGER.fullmatch(data):
            try:
                return int(data)
            except ValueError as exc:  # more digits than this interpreter converts
                raise DeserializationError(
                    f"cannot read the {len(data)}-digit integer stored under {key!r}: {exc}"
                ) from exc
        return self.load_value(key, data)  # unsigned: the name is not needed

    _drops_unreadable = False
    """Whether an unreadable entry is deleted and is a miss (RedisCacheNoExceptions), or raises."""

    def _loads(self, key: str, data: Any) -> Any:
        """Decode what is stored under ``key``; an unreadable entry counts and raises.

        In RedisCacheNoExceptions (``_drops_unreadable``), an unreadable entry is logged,
        deleted, and is a miss.
        """
        try:
            return self._decode(key, data)
        except DeserializationError as exc:
            self._unreadable(key, exc)
            self.delete(key)
            return NO_VALUE

    def _unreadable(self, key: str, exc: DeserializationError) -> None:
        """Count the unreadable entry under ``key``; raise ``exc`` unless it is to be dropped.

        Returning means the caller deletes the entry (sync or awaited) and misses.
        """
        self.stats.deserialization_failures += 1
        if not self._drops_unreadable:
            raise exc
        self._report_unreadable(key, exc)

    def _report_unreadable(self, key: str, exc: DeserializationError) -> None:
        logger.warning("deleting unreadable Redis entry %r: %s", self._key(key), exc)

    def _signed_inc(self, r: RedisLike, key: str, delta: int) -> int:
        """``inc`` with a secret key: a signed read-modify-write under ``WATCH``."""
        full = self._key(key)
        with r.pipeline(transaction=True) as pipe:
            for attempt in range(_SIGNED_INC_ATTEMPTS):
                try:
                    pipe.watch(full)
                    data = pipe.get(full)
                    current = NO_VALUE if data is None else self._loads(key, data)
                    if current is NO_VALUE:  # missing, or unreadable and deleted
                        current = 0
                    if type(current) is not int:
                        raise TypeError(
                            f"cannot increment {key!r}: it holds a {type(current).__name__},"
                            " not an integer"
                        )
                    pipe.multi()
                    pipe.set(full, self.dump_value(full, current + delta), keepttl=True)
                    pipe.execute()
                    return current + delta
                except redis.WatchError:
                    if attempt == _SIGNED_INC_ATTEMPTS - 1:
                        raise  # as a Redis failure: RedisCacheError, or None without exceptions
                    # Another writer won: back off a random while (at most 10 ms), or threads
                    # hammering one key keep colliding in lockstep (100 losses seen under load).
                    time.sleep(random.uniform(0, min(0.01, 0.0002 * 2**attempt)))
        raise AssertionError("unreachable")  # pragma: no cover
