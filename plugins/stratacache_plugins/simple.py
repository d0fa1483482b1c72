"""SimpleCache and SimpleCacheNoSerializer: bounded, thread-safe, in-process LRU caches."""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from stratacache import (
    NO_VALUE,
    Backend,
    DeserializationError,
    Serializer,
    Timeout,
    key_type_error,
    renew_in_child,
)
from stratacache.options import option
from stratacache_plugins._options import PluginOptions
from stratacache_plugins.simplecopy import Restore, form_of
from stratacache_plugins.simpletags import SimpleTags

__all__ = ["SimpleCache", "SimpleCacheNoSerializer", "SimpleCacheOptions"]

logger = logging.getLogger(__name__)

_NEVER = math.inf
_EXPIRED_DROPS_PER_WRITE = 4  # without a threshold, each write drops this many expired

_Entry = tuple[float, Any, str | None, Restore]  # expires at, data, group, how to return it


class SimpleCacheOptions(PluginOptions):
    """The options of SimpleCache and SimpleCacheNoSerializer."""

    threshold: int = option(
        500,
        key="THRESHOLD",
        accepts="a whole number >= 0 (0 = no limit)",
        description="Maximum entry count of each local layer (least recently used go first).",
        ge=0,
    )


class SimpleCache(SimpleTags, Backend):
    """In-memory LRU cache of serialized values, safe to share between threads.

    Every read refreshes an entry's recency; past ``threshold`` entries, expired entries go
    first, then the least recently used. Without a threshold, each write also removes a few
    of the entries that expired first, so unread expired entries do not pile up. A caller
    mutating a returned object never changes the cached one: values are pickled, unless
    immutable or a flat container of immutables (:mod:`stratacache_plugins.simplecopy`).
    Expiry uses a monotonic clock, immune to changes of the wall clock.

    ``len(cache)`` and ``len(cache._cache)`` give the entry count (expired entries included
    until they are evicted or read).

    Args:
        threshold: Maximum entry count; ``0`` means no limit (not cachelib's 500).
        default_timeout: Seconds an entry lives when ``set`` gets no timeout; 0 = forever.
        serializer: How values are copied (default pickle).
        clock: Returns the current time in seconds (tests pass a controllable one).
    """

    in_process = True
    options_model = SimpleCacheOptions

    def __init__(
        self,
        threshold: int = 500,
        default_timeout: int | timedelta = 300,
        *,
        serializer: Serializer | None = None,
        clock: Callable[[], float] = time.monotonic,
        ignore_delete_many_errors: bool = True,
    ) -> None:
        super().__init__(
            default_timeout,
            serializer=serializer,
            ignore_delete_many_errors=ignore_delete_many_errors,
        )
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0 (0 = no limit), got {threshold!r}")
        self._threshold = threshold
        self._clock = clock
        self._lock = threading.Lock()
        renew_in_child(self, "_lock")
        # key -> entry (see _Entry); order = recency, oldest first.
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._groups: dict[str, set[str]] = {}
        # The tags of tagged entries, both ways; an entry leaving the cache leaves them.
        self._tags: dict[str, set[str]] = {}
        self._entry_tags: dict[str, tuple[str, ...]] = {}
        # (expires at, key) of entries that expire, so eviction finds expired ones first.
        self._expiry: list[tuple[float, str]] = []
        self._lookup = self._compile_lookup()

    def _serializer_changed(self) -> None:
        # Chosen once per serializer: how each write stores its value (see simplecopy).
        self._form = form_of(self._codec if self.serializes else None)

    def __len__(self) -> int:
        return len(self._cache)

    # -- reads ----------------------------------------------------------------------------

    def lookup(self, key: str) -> Any:
        """Return the value of ``key`` or ``NO_VALUE``; a hit becomes most recently used.

        A read takes no lock: each step is one atomic operation on the ordered dict, and an
        entry is an immutable tuple, so a concurrent write at worst makes the read return the
        value it replaced. Writers, which change several structures at once, take the lock.
        """
        return self._lookup(key)

    def compiled_lookup(self) -> Callable[[str], Any]:
        """Return :meth:`lookup` as a closure (unless a subclass overrides ``lookup``)."""
        if type(self).lookup is not SimpleCache.lookup:
            return self.lookup
        return self._lookup

    def _compile_lookup(self) -> Callable[[str], Any]:
        # The hot path of every cache hit: each name it needs is a local of this closure,
        # which costs fewer instructions than the attributes of a method's self.
        find, touch, clock = self._cache.get, self._cache.move_to_end, self._clock
        expired, unreadable = self._drop_expired, self._drop_unreadable

        def lookup(key: str) -> Any:
            try:
                entry = find(key)
            except TypeError:  # unhashable
                raise key_type_error(key) from None
            if entry is None:
                if type(key) is not str:  # never stored (writes refuse it): checked on a miss
                    raise key_type_error(key)
                return NO_VALUE
            if entry[0] <= clock():
                expired(key, entry)
                return NO_VALUE
            try:  # noqa: SIM105 (contextlib.suppress costs more than the lookup here)
                touch(key)
            except KeyError:  # gone since the get: it was a hit all the same
                pass
            restore = entry[3]
            if restore is None:
                return entry[1]
            try:
                return restore(entry[1])
            except DeserializationError as exc:
                unreadable(key, exc)
                return NO_VALUE

        return lookup

    def lookup_entry(self, key: str) -> tuple[Any, float | None]:
        """Return ``(value, remaining)``: :meth:`lookup` and the seconds left on the clock.

        ``remaining`` is ``math.inf`` for an entry that never expires. Same semantics as
        :meth:`lookup`, which stays a separate method because it is the hot path.
        """
        try:
            entry = self._cache.get(key)
        except TypeError:  # unhashable
            raise key_type_error(key) from None
        if entry is None:
            if type(key) is not str:
                raise key_type_error(key)
            return NO_VALUE, None
        remaining = entry[0] - self._clock()  # inf - now is inf: never expires
        if remaining <= 0:
            self._drop_expired(key, entry)
            return NO_VALUE, None
        try:  # noqa: SIM105 (as in lookup)
            self._cache.move_to_end(key)
        except KeyError:  # gone since the get: it was a hit all the same
            pass
        restore = entry[3]
        if restore is None:
            return entry[1], remaining
        try:
            return restore(entry[1]), remaining
        except DeserializationError as exc:
            self._drop_unreadable(key, exc)
            return NO_VALUE, None

    def _drop_expired(self, key: str, entry: _Entry) -> None:
        """Remove the expired ``entry`` a read found, unless ``key`` was rewritten since."""
        with self._lock:
            if self._cache.get(key) is entry:
                self._discard(key, entry)

    def _drop_unreadable(self, key: str, exc: DeserializationError) -> None:
        self.stats.deserialization_failures += 1
        logger.warning("SimpleCache: deleting unreadable entry %r: %s", key, exc)
        self.delete(key)

    def has(self, key: str) -> bool:
        """Return whether ``key`` holds an unexpired entry (recency is not changed)."""
        _check_key(key)
        with self._lock:
            entry = self._cache.get(key)
            return entry is not None and entry[0] > self._clock()

    # -- writes ---------------------------------------------------------------------------

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` under ``key``; always ``True`` (pickling errors raise)."""
        _check_key(key)
        data, restore = self._form(value)
        expires = self._expires(timeout)
        with self._lock:
            self._put(key, data, restore, expires, None)
        return True

    def set_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store ``value`` with :meth:`set`, then record ``key`` in ``group``.

        Going through :meth:`set` lets a subclass that overrides it see every write.
        """
        stored = self.set(key, value, timeout)
        if group is not None:
            with self._lock:
                entry = self._cache.get(key)
                if entry is not None and entry[2] != group:
                    self._cache[key] = (entry[0], entry[1], group, entry[3])  # keeps recency
                    self._groups.setdefault(group, set()).add(key)
        return bool(stored)

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` only if ``key`` holds no unexpired entry; return whether it did."""
        _check_key(key)
        data, restore = self._form(value)
        expires = self._expires(timeout)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry[0] > self._clock():
                return False
            self._put(key, data, restore, expires, None)
        return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        _check_key(key)
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return False
            self._discard(key, entry)
            return True

    def clear(self) -> bool:
        """Remove every entry."""
        with self._lock:
            self._cache.clear()
            self._groups.clear()
            self._tags.clear()
            self._entry_tags.clear()
            self._expiry.clear()
        return True

    def clear_except(self, keep: Callable[[str], bool]) -> bool:
        """Remove every entry whose key ``keep`` refuses; return True.

        A coherent tier keeps its fail-safe envelopes this way through a lost invalidation
        channel (see :mod:`stratacache.coherence`).
        """
        with self._lock:
            for key, entry in list(self._cache.items()):
                if not keep(key):
                    self._discard(key, entry)
        return True

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Atomically add ``delta`` to the number under ``key`` (missing counts as 0)."""
        _check_key(key)
        with self._lock:
            entry = self._cache.get(key)
            current = 0
            if entry is not None and entry[0] > self._clock():
                restore = entry[3]
                current = entry[1] if restore is None else restore(entry[1])
            new = (current or 0) + delta
            data, restore = self._form(new)
            self._put(key, data, restore, self._expires(None), entry[2] if entry else None)
            return int(new)

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Atomically subtract ``delta`` from the number under ``key`` (missing counts as 0)."""
        return self.inc(key, -delta)

    def clear_tracked(self, group: str) -> int:
        """Remove every entry recorded in ``group``; return how many."""
        removed = 0
        with self._lock:
            for key in self._groups.pop(group, ()):
                entry = self._cache.get(key)
                if entry is not None and entry[2] == group:
                    del self._cache[key]
                    if self._entry_tags:
                        self._untag(key)
                    removed += 1
        return removed

    # -- internals (called with the lock held) --------------------------------------------

    def _expires(self, timeout: Timeout) -> float:
        seconds = self.timeout_seconds(timeout)
        return _NEVER if seconds == 0 else self._clock() + seconds

    def _put(
        self, key: str, data: Any, restore: Restore, expires: float, group: str | None
    ) -> None:
        old = self._cache.pop(key, None)
        if old is not None and old[2] is not None and old[2] != group:
            self._untrack(key, old[2])
        if old is not None and self._entry_tags:
            self._untag(key)
        self._cache[key] = (expires, data, group, restore)
        if group is not None:
            self._groups.setdefault(group, set()).add(key)
        if expires is not _NEVER:
            heapq.heappush(self._expiry, (expires, key))
            if len(self._expiry) > 2 * len(self._cache) + 64:
                self._rebuild_expiry()
        if not self._threshold:
            expiry = self._expiry
            if expiry and expiry[0][0] <= self._clock():
                self._drop_expired_first(_EXPIRED_DROPS_PER_WRITE)
        elif len(self._cache) > self._threshold:
            self._evict()

    def _evict(self) -> None:
        self._drop_expired_first(len(self._cache) - self._threshold)
        cache = self._cache
        while len(cache) > self._threshold:
            key, entry = cache.popitem(last=False)
            if entry[2] is not None:
                self._untrack(key, entry[2])
            if self._entry_tags:
                self._untag(key)

    def _drop_expired_first(self, count: int) -> None:
        """Remove up to ``count`` expired entries, those that expired first."""
        now = self._clock()
        cache, expiry = self._cache, self._expiry
        target = len(cache) - count
        while len(cache) > target and expiry and expiry[0][0] <= now:
            expires, key = heapq.heappop(expiry)
            entry = cache.get(key)
            if entry is not None and entry[0] == expires:
                self._discard(key, entry)

    def _discard(self, key: str, entry: _Entry) -> None:
        del self._cache[key]
        if entry[2] is not None:
            self._untrack(key, entry[2])
        if self._entry_tags:
            self._untag(key)

    def _untrack(self, key: str, group: str) -> None:
        members = self._groups.get(group)
        if members is not None:
            members.discard(key)
            if not members:
                del self._groups[group]

    def _rebuild_expiry(self) -> None:
        # list() copies in one C call: readers may move entries while we iterate.
        items = list(self._cache.items())
        self._expiry = [(e[0], k) for k, e in items if e[0] is not _NEVER]
        heapq.heapify(self._expiry)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(threshold={self._threshold},"
            f" default_timeout={self.default_timeout})"
        )


class SimpleCacheNoSerializer(SimpleCache):
    """SimpleCache that keeps the objects themselves: no copy, no pickle.

    The fastest layer, for objects that cannot or should not be serialized (ORM instances,
    compiled templates). A caller mutating a returned object mutates the cached one.
    """

    serializes = False


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise key_type_error(key)
