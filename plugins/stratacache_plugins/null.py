"""NullCache: a cache that stores nothing, so decorated functions always run."""

from __future__ import annotations

from typing import Any

from stratacache import NO_VALUE, Backend, Timeout, key_type_error

__all__ = ["NullCache"]


class NullCache(Backend):
    """Every operation is a no-op: reads miss, writes report success and store nothing.

    Use it to switch caching off (the default ``CACHE_TYPE``, so nothing is shared until a
    shared backend is chosen) or as ``LOCALCACHE_TYPE`` to disable the local layer.
    """

    in_process = True
    stores = False

    def lookup(self, key: str) -> Any:
        """Always a miss."""
        _check_key(key)
        return NO_VALUE

    def lookup_entry(self, key: str) -> tuple[Any, float | None]:
        """Always a miss: ``(NO_VALUE, None)``."""
        _check_key(key)
        return NO_VALUE, None

    def has(self, key: str) -> bool:
        """Never holds anything."""
        _check_key(key)
        return False

    def delete(self, key: str) -> bool:
        """Nothing is stored, so nothing is deleted."""
        _check_key(key)
        return False

    def set_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store nothing; report success as ``set`` does."""
        _check_key(key)
        return True

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store nothing; report success, as cachelib's ``NullCache`` does."""
        _check_key(key)
        return True

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store nothing; report success, as cachelib's ``NullCache`` does."""
        _check_key(key)
        return True

    def clear_tracked(self, group: str) -> int:
        """Nothing to delete."""
        return 0

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Nothing is stored, so there is nothing to increment: returns ``delta``."""
        _check_key(key)
        return delta

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Nothing is stored, so there is nothing to decrement: returns ``-delta``."""
        _check_key(key)
        return -delta


def _check_key(key: object) -> None:
    # Refused as every other backend refuses it: a program that runs on NullCache (the
    # default) must not break when a real backend is configured.
    if not isinstance(key, str):
        raise key_type_error(key)
