"""DictCache: a minimal in-memory stratacache backend, the template of a third-party one.

It imports stratacache's public API only, and is declared in ``pyproject.toml`` under the
entry-point group ``stratacache.backends``, which is how stratacache finds it by name. Values
become bytes through ``dump_value`` and come back through ``load_value``, as in a backend
that stores them outside the process: the serializer applies, and with ``CACHE_SECRET_KEY``
every payload is signed and checked.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from typing import Any

from stratacache import NO_VALUE, Backend, DeserializationError, Timeout, key_type_error

__all__ = ["DictCache"]


class DictCache(Backend):
    """An unbounded dict of serialized values, safe to share between threads.

    The contract is :class:`stratacache.Backend`'s. Expiry uses a monotonic clock; expired
    entries are dropped when read, never in bulk (the dict has no size limit). ``inc`` and
    ``dec`` are inherited from the base class, so they are not atomic.

    Args:
        default_timeout: Seconds an entry lives when ``set`` gets no timeout; 0 = forever.
        **options: The options of :class:`stratacache.Backend` (``serializer``,
            ``secret_key``...), passed on, so the layer stack gives them to this backend too.
    """

    in_process = True

    def __init__(self, default_timeout: int | timedelta = 300, **options: Any) -> None:
        super().__init__(default_timeout, **options)
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, bytes]] = {}  # key -> (expires at, data)

    def lookup(self, key: str) -> Any:
        """Return the value of ``key`` or ``NO_VALUE``, in one read."""
        _check(key)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return NO_VALUE
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return NO_VALUE
        try:
            return self.load_value(key, entry[1])
        except DeserializationError:  # corrupted, or not signed with our key: a miss
            with self._lock:
                if self._entries.get(key) is entry:  # not replaced meanwhile
                    del self._entries[key]
            return NO_VALUE

    def get(self, key: str) -> Any:
        """Return the value of ``key``, or ``None`` on a miss."""
        value = self.lookup(key)
        return None if value is NO_VALUE else value

    def has(self, key: str) -> bool:
        """Return whether ``key`` holds an unexpired entry."""
        _check(key)
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and entry[0] > time.monotonic()

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` under ``key``; unserializable values raise."""
        _check(key)
        data = self.dump_value(key, value)
        expires = self._expires(timeout)
        with self._lock:
            self._entries[key] = (expires, data)
        return True

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` only if ``key`` holds no unexpired entry; return whether it did."""
        _check(key)
        data = self.dump_value(key, value)
        expires = self._expires(timeout)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > time.monotonic():
                return False
            self._entries[key] = (expires, data)
        return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether an unexpired entry was there."""
        _check(key)
        with self._lock:
            entry = self._entries.pop(key, None)
        return entry is not None and entry[0] > time.monotonic()

    def clear(self) -> bool:
        """Remove every entry."""
        with self._lock:
            self._entries.clear()
        return True

    def _expires(self, timeout: Timeout) -> float:
        seconds = self.timeout_seconds(timeout)
        return math.inf if seconds == 0 else time.monotonic() + seconds

    def __len__(self) -> int:
        return len(self._entries)


def _check(key: object) -> None:
    # Keys are str in every backend: any other is refused, with stratacache's own message.
    if not isinstance(key, str):
        raise key_type_error(key)
