"""A third-party backend as a package outside stratacache would write it, with its own options.

``DictBackend`` declares :class:`DictOptions`, whose one option ``dict_size`` is read from
``CACHE_DICT_SIZE`` for the shared tier (``LOCALCACHE_DICT_SIZE`` for a local one) and from
``dict_size`` in a ``CACHE_LAYERS`` tier spec. Select it with the dotted path
``tests.thirdparty_backend:DictBackend``. ``tests/test_backend_options.py`` uses it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import field_validator

from stratacache import NO_VALUE, Backend, BackendOptions, Serializer, Timeout, option

__all__ = ["DICT_SIZE_ACCEPTS", "DictBackend", "DictOptions"]

DICT_SIZE_ACCEPTS = "a whole number from 1 to 10000"


class DictOptions(BackendOptions):
    """The options DictBackend owns."""

    dict_size: int = option(
        100,
        key="DICT_SIZE",
        accepts=DICT_SIZE_ACCEPTS,
        description="Most entries the dict keeps (the oldest go first).",
        ge=1,
        le=10000,
    )

    @field_validator("dict_size", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        return value


class DictBackend(Backend):
    """A plain dict of serialized values, bounded by ``dict_size`` (no expiry: tests only)."""

    in_process = True
    options_model = DictOptions

    def __init__(
        self,
        dict_size: int = 100,
        default_timeout: int | timedelta = 300,
        *,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(default_timeout, serializer=serializer)
        self.dict_size = dict_size
        self._data: dict[str, bytes] = {}

    def lookup(self, key: str) -> Any:
        """Return the value of ``key`` or ``NO_VALUE``."""
        data = self._data.get(key)
        return NO_VALUE if data is None else self.serializer.loads(data)

    def has(self, key: str) -> bool:
        """Return whether ``key`` is stored."""
        return key in self._data

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value``; the oldest entry goes past ``dict_size``."""
        self._data.pop(key, None)
        self._data[key] = self.serializer.dumps(value)
        while len(self._data) > self.dict_size:
            del self._data[next(iter(self._data))]
        return True

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` unless ``key`` is stored."""
        if key in self._data:
            return False
        return self.set(key, value, timeout)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        return self._data.pop(key, None) is not None

    def clear(self) -> bool:
        """Remove every entry."""
        self._data.clear()
        return True

    def __len__(self) -> int:
        return len(self._data)
