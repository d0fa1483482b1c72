"""The backend contract's tag operations, with defaults on top of key tracking.

``cached_for(tags=["user:{user_id}"])`` writes each entry with :meth:`TagMethods.set_tagged`
(fills of the tiers above included); ``invalidate_tags("user:42")`` asks each tier's backend
to :meth:`TagMethods.invalidate_tag`. Part of :class:`~stratacache.Backend`, whose docstring
states the rest of the contract.

The defaults work for any backend: a tag's keys are recorded like a group's
(``Backend.set_tracked``'s default index entry, pruned of keys that are gone as it grows),
under the group ``__tag__:<tag>``. A backend with a better structure overrides both:
SimpleCache keeps an in-memory index that entries leave when they expire or are evicted,
FileSystemCache an index file per tag, Redis a sorted set per function and tag written in
the entry's ``MULTI``. Whatever the structure, it must stay bounded by the live entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stratacache.computation import Timeout

__all__ = ["TagMethods"]

_TAG_GROUP = "__tag__:"  # no group (a function's module.qualname) has a colon


class TagMethods:
    """``set_tagged`` and ``invalidate_tag``; the defaults use the tracking primitives."""

    if TYPE_CHECKING:  # Backend's, declared for the type checker only

        def set_tracked(  # noqa: D102
            self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
        ) -> bool: ...
        def _track(self, group: str, key: str) -> None: ...
        def _clear_index(self, group: str) -> int: ...

    def set_tagged(
        self,
        key: str,
        value: Any,
        timeout: Timeout = None,
        group: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """Store ``value`` like ``set_tracked`` and record ``key`` under each of ``tags``.

        The decorator calls it for the entries of a function with ``tags=[...]`` (and
        ``set_tracked`` for the others), so that :meth:`invalidate_tag` later removes them,
        whichever function wrote them. The record must stay bounded: entries that expire
        or are evicted leave it, or it is pruned of them as it grows.
        """
        stored = self.set_tracked(key, value, timeout, group)
        if stored:
            for tag in tags:
                self._track(_TAG_GROUP + tag, key)
        return stored

    def invalidate_tag(self, tag: str) -> int:
        """Delete every entry recorded under ``tag`` and the record; return how many went."""
        return self._clear_index(_TAG_GROUP + tag)
