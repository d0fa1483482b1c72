"""Appending keys to index files: a function's tracked keys, and each tag's.

Part of :class:`~stratacache_plugins.filesystem.FileSystemCache`. A tag's index is the index
of the group ``__tag__:<tag>`` (no function's ``module.qualname`` has a colon), so tags get
the group indexes' locking and compaction: an index is rewritten with its live keys when it
doubles, so it never outgrows the entries it lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stratacache import Backend, Timeout
from stratacache_plugins.filesystem.entry import INDEX
from stratacache_plugins.filesystem.failures import degrades

if TYPE_CHECKING:
    from stratacache_plugins.filesystem.tracking import GroupIndexes

__all__ = ["FileIndexing"]

_TAG_GROUP = "__tag__:"


class FileIndexing(Backend):
    """The index files of a FileSystemCache: appends, and the tag operations on them."""

    if TYPE_CHECKING:  # FileSystemCache's, declared for the type checker only
        _indexes: GroupIndexes
        _index_bounds: dict[str, int]
        _index_min_size: int

        def _path(self, key: str, suffix: str = ...) -> str: ...
        def _compact(self, path: str) -> None: ...
        def note_unusable(self, operation: str, exc: OSError) -> None: ...  # noqa: D102

    def _index(self, group: str, key: str) -> None:
        """Append ``key`` to ``group``'s index; if it cannot take it, the entry goes too."""
        path = self._path(group, INDEX)
        try:
            size = self._indexes.append(path, key)
        except BaseException:
            self.delete(key)
            raise
        if size > self._index_bounds.get(path, self._index_min_size):
            self._compact(path)

    @degrades(False)
    def set_tagged(
        self,
        key: str,
        value: Any,
        timeout: Timeout = None,
        group: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """Store like ``set_tracked``, then append ``key`` to each tag's index file."""
        if not self.set_tracked(key, value, timeout, group):
            return False
        for tag in tags:
            self._index(_TAG_GROUP + tag, key)
        return True

    @degrades(0)
    def invalidate_tag(self, tag: str) -> int:
        """Delete the entries listed in ``tag``'s index, then the index; return how many."""
        return self.clear_tracked(_TAG_GROUP + tag)
