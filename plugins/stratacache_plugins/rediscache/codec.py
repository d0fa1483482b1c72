"""How the Redis backends store values: integers as plain digits, the rest serialized.

Digits let ``INCRBY`` work on counters, as in cachelib; every other value goes to the
serializer. With a secret key every value, integers included, is serialized and signed
under its key's full name, so that a signed entry copied under another prefix does not
verify.
"""

from __future__ import annotations

import re
from typing import Any

from stratacache import DeserializationError
from stratacache_plugins.rediscache.naming import RedisKeys

__all__ = ["RedisCodec"]

_INTEGER = re.compile(rb"-?[0-9]+")
_DIGIT_STARTS = frozenset(b"-0123456789"[i : i + 1] for i in range(11))


class RedisCodec(RedisKeys):
    """Base of the Redis backends: a value to the bytes of its key, and back."""

    def _dumps(self, key: str, value: Any) -> bytes:
        """Serialize ``value``; integers are stored as plain digits, as cachelib does.

        Digits let ``INCRBY`` work on counters; every other value goes to the serializer.
        With a secret key every value, integers included, is serialized and signed.
        """
        if self.signer is None:
            return str(value).encode() if type(value) is int else self.dump_value(key, value)
        return self.dump_value(self._key(key), value)  # signed under its full name

    def _decode(self, key: str, data: bytes) -> Any:
        if self.signer is not None:
            return self.load_value(self._key(key), data)
        if data[:1] in _DIGIT_STARTS and _INTEGER.fullmatch(data):
            return int(data)
        return self.load_value(key, data)  # unsigned: the name is not needed

    def _loads(self, key: str, data: Any) -> Any:
        """Decode what is stored under ``key``; an unreadable entry counts and raises.

        RedisCacheNoExceptions overrides it: there, an unreadable entry is deleted and is a
        miss.
        """
        try:
            return self._decode(key, data)
        except DeserializationError:
            self.stats.deserialization_failures += 1
            raise
