"""The tag index of SimpleCache: which entries carry which tags, both ways, in memory.

Part of :class:`~stratacache_plugins.simple.SimpleCache`. Every entry that leaves the cache
(expired, evicted, replaced, deleted) leaves the index with it (the cache calls
:meth:`SimpleTags._untag`), so the index never outgrows the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from stratacache import Backend, Timeout

__all__ = ["SimpleTags"]


class SimpleTags(Backend):
    """``set_tagged`` and ``invalidate_tag`` on an in-memory index (with the cache's lock)."""

    _tags: dict[str, set[str]]
    _entry_tags: dict[str, tuple[str, ...]]

    if TYPE_CHECKING:  # SimpleCache's, declared for the type checker only
        _lock: threading.Lock
        _cache: OrderedDict[str, tuple[float, Any, str | None, Any]]

        def _discard(self, key: str, entry: tuple[float, Any, str | None, Any]) -> None: ...

    def set_tagged(
        self,
        key: str,
        value: Any,
        timeout: Timeout = None,
        group: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """Store ``value`` with :meth:`set_tracked`, then record ``key`` under ``tags``.

        The index lives beside the entries: an entry that expires, is evicted or replaced
        leaves it, so it never outgrows the cache.
        """
        stored = self.set_tracked(key, value, timeout, group)
        if tags:
            with self._lock:
                if key in self._cache:
                    self._untag(key)
                    self._entry_tags[key] = tags
                    for tag in tags:
                        self._tags.setdefault(tag, set()).add(key)
        return bool(stored)

    def invalidate_tag(self, tag: str) -> int:
        """Remove every entry recorded under ``tag``; return how many."""
        removed = 0
        with self._lock:
            for key in self._tags.pop(tag, ()):
                entry = self._cache.get(key)
                if entry is not None:
                    self._discard(key, entry)
                    removed += 1
        return removed

    def _untag(self, key: str) -> None:
        for tag in self._entry_tags.pop(key, ()):
            members = self._tags.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._tags[tag]
