"""FileSystemCache: the cache of a directory (its files are described in ``entry``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Protocol

import platformdirs

from stratacache import Backend, Serializer, Timeout, renew_in_child
from stratacache_plugins.filesystem import tracking
from stratacache_plugins.filesystem.entry import (
    ENTRY,
    INDEX,
    LOCK_FILE,
    STALE_TEMP_SECONDS,
    TEMP,
    FileKinds,
    pack_header,
    unlink,
)
from stratacache_plugins.filesystem.failures import DirectoryHealth, degrades
from stratacache_plugins.filesystem.files import (
    entry_path,
    make_directory,
    str_key,
    write_temp,
)
from stratacache_plugins.filesystem.indexing import FileIndexing
from stratacache_plugins.filesystem.options import FileSystemCacheOptions
from stratacache_plugins.filesystem.pruning import EntryCount
from stratacache_plugins.filesystem.reading import FileReading
from stratacache_plugins.filesystem.tracking import GroupIndexes

__all__ = ["FileSystemCache"]

logger = logging.getLogger(__package__)  # stratacache_plugins.filesystem, as before the split


class _Digest(Protocol):
    def hexdigest(self) -> str: ...


class FileSystemCache(FileReading, FileIndexing, Backend):
    """Cache in a directory: entries survive restarts and are shared by local processes.

    ``inc``/``dec``, the key tracking and the pruning take ``fcntl.flock`` locks, so they are
    atomic across processes; on a platform without ``flock`` (Windows) the constructor raises
    ``NotImplementedError`` rather than run without them. ``clear()`` removes every entry of
    the directory, whatever its ``key_prefix``, but never a file it did not create (nor the
    temporary file of a write still in progress).

    A directory that cannot be used (full, read-only, not permitted, failing: see
    :mod:`~stratacache_plugins.filesystem.failures`) never raises: reads of what is there go
    on, a read that fails misses, a write or delete that fails returns ``False`` (``inc``
    ``None``), each failure counts in ``stats.errors``, and a WARNING says so at most every
    30 seconds. Other ``OSError`` exceptions are bugs and raise. Files are opened without following
    links or blocking on FIFOs (see :mod:`~stratacache_plugins.filesystem.files`): anything
    planted at a path of the cache is removed, never followed. :meth:`ping` writes a probe
    file, so it raises when writes fail.

    Args:
        cache_dir: The directory, created if missing (default: the user cache directory,
            ``platformdirs.user_cache_dir("stratacache")``); if it cannot be created, the
            constructor raises ``OSError`` (start-up fails: a setting to fix).
        threshold: Maximum entry count, shared by every process of the directory: each
            entry created appends one byte to ``stratacache.count``, and past the threshold
            one process lists the directory to remove expired entries, then the oldest, down
            to 90% of it. Writes racing with a prune may exceed it by a few entries.
            ``0`` means no limit.
        default_timeout: Seconds an entry lives when ``set`` gets no timeout; 0 = forever.
        mode: Permissions of the files (default ``0o600``). A directory the cache creates
            is ``0o700``, plus read and search for whoever ``mode`` lets read the files; an
            existing one that its group or others can write to is warned about.
        hash_method: Hashes keys into file names (default ``hashlib.sha256``).
        key_prefix: Prepended to every key (and group) before hashing.
        serializer: How values become bytes (default pickle).
        secret_key: Secret(s) to sign every entry with (``CACHE_SECRET_KEY``; see
            :mod:`stratacache.signing`): an unsigned or wrongly signed file is never
            deserialized. The expiry header is not signed.
        ignore_delete_many_errors: As in cachelib.
        clock: Returns the current UNIX time, which expiry follows (tests pass a
            controllable one). The age of temporary files is read on the wall clock, like
            the modification times it is compared with.
    """

    in_process = False
    serializer_stream = True  # a cachelib serializer's dump/load, as cachelib's FileSystemCache
    options_model = FileSystemCacheOptions

    _index_min_size = 64 * 1024
    """An index file is compacted when it grows past this size (or twice its compacted size)."""

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        threshold: int = 500,
        default_timeout: int | timedelta = 300,
        mode: int | None = None,
        hash_method: Callable[[bytes], _Digest] = hashlib.sha256,
        *,
        key_prefix: str = "",
        serializer: Serializer | None = None,
        secret_key: str | bytes | Iterable[str | bytes] | None = None,
        ignore_delete_many_errors: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        tracking.require_flock()
        super().__init__(
            default_timeout,
            serializer=serializer,
            secret_key=secret_key,
            ignore_delete_many_errors=ignore_delete_many_errors,
        )
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0 (0 = no limit), got {threshold!r}")
        if cache_dir is None:
            cache_dir = platformdirs.user_cache_dir("stratacache")
        self._dir = os.fspath(cache_dir)
        self._threshold = threshold
        if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int)):
            raise TypeError(f"mode must be file permissions as an int, e.g. 0o600, got {mode!r}")
        self._mode = 0o600 if mode is None else mode
        self._clock = clock
        self._hash_method = hash_method
        self._key_prefix = key_prefix
        self._lock = threading.Lock()  # one prune at a time in this process
        self._inc_lock = threading.Lock()
        renew_in_child(self, "_lock", "_inc_lock")
        self._index_bounds: dict[str, int] = {}
        self._lock_path = os.path.join(self._dir, LOCK_FILE)
        self._kind = FileKinds(len(hash_method(b"").hexdigest()))
        self._health = DirectoryHealth(self._dir, self._mode, logger, lambda: self.stats)
        self._indexes = GroupIndexes(self._health.open_in_place, self._write_temp)
        self._count = EntryCount(self._dir, threshold, clock, self._kind, self._lock, self._health)
        warning = make_directory(self._dir, self._mode)  # cannot: raises (a setting to fix)
        if warning is not None:
            logger.warning("%s", warning)
        if threshold:
            self._count_existing_entries()

    @degrades(None)
    def _count_existing_entries(self) -> None:
        self._count.count_existing_entries()

    # -- writes ---------------------------------------------------------------------------

    @degrades(False)
    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` under ``key``; a serialization error raises and writes nothing."""
        path = self._path(key)
        tmp = self._write_entry(key, value, timeout)
        try:
            created = not os.path.lexists(path)
            os.replace(tmp, path)  # replaces whatever is there, a link too: never follows it
        except BaseException:
            unlink(tmp)
            raise
        self._stored(path if created else None)
        return True

    @degrades(False)
    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` unless ``key`` holds an unexpired entry; return whether it did."""
        path = self._path(key)
        tmp = self._write_entry(key, value, timeout)
        try:
            for _attempt in range(3):
                try:
                    os.link(tmp, path)  # atomic create-if-absent, across processes too
                except FileExistsError:
                    if self.has(key):  # else has() removed the expired or unreadable entry
                        return False
                else:
                    self._stored(path)
                    return True
            os.replace(tmp, path)  # expired entries keep appearing: overwrite, best effort
            self._stored(None)
            return True
        finally:
            unlink(tmp)

    @degrades(False)
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether its file was there."""
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return False
        return True

    @degrades(False)
    def clear(self) -> bool:
        """Remove every entry and group index of the directory (see the class docstring)."""
        stale = time.time() - STALE_TEMP_SECONDS
        with self._lock, os.scandir(self._dir) as listing:
            for entry in listing:
                kind = self._kind(entry.name)
                if kind is None or entry.is_dir(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if kind != TEMP or entry.stat(follow_symlinks=False).st_mtime < stale:
                        os.unlink(entry.path)
            self._count.reset()
        return True

    @degrades(None)
    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add ``delta`` to the number under ``key`` (missing counts as 0), atomically."""
        with self._inc_lock, self._indexes.flocked(self._lock_path, create=True):
            new: int = (self.get(key) or 0) + delta
            if not self.set(key, new):
                return None
        return new

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Subtract ``delta`` from the number under ``key`` (missing counts as 0), atomically."""
        return self.inc(key, -delta)

    # -- key tracking ---------------------------------------------------------------------

    @degrades(False)
    def set_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store ``value``, then append ``key`` to the index file of ``group``.

        If the index cannot take the key, the entry goes too: ``clear_tracked`` would miss it.
        """
        if not self.set(key, value, timeout):
            return False
        if group is not None:
            self._index(group, key)
        return True

    @degrades(0)
    def clear_tracked(self, group: str) -> int:
        """Delete the entries listed in ``group``'s index, then the index; return how many."""
        keys = self._indexes.take(self._path(group, INDEX))
        return sum(self.delete(key) for key in keys)

    @degrades(None)
    def _compact(self, path: str) -> None:
        """Rewrite an index with its keys that still have an entry, once each."""
        size = self._indexes.compact(path, lambda key: os.path.lexists(self._path(key)))
        if size is not None:
            self._index_bounds[path] = max(self._index_min_size, 2 * size)

    # -- internals ------------------------------------------------------------------------

    def _path(self, key: str, suffix: str = ENTRY) -> str:
        return entry_path(self._dir, self._hash_method, self._key_prefix + str_key(key), suffix)

    def _header(self, timeout: Timeout) -> bytes:
        seconds = self.timeout_seconds(timeout)
        return pack_header(0.0 if seconds == 0 else self._clock() + seconds)

    def _write_entry(self, key: str, value: Any, timeout: Timeout) -> str:
        """Write ``key``'s entry to a temporary file; return its path.

        The header, then the payload, signed under the key's full name (prefix included).
        """
        return self._write_temp(
            self._header(timeout), self.dump_value(self._key_prefix + key, value)
        )

    def _write_temp(self, *chunks: bytes) -> str:
        """Write ``chunks`` to a new temporary file of the directory; return its path."""
        return write_temp(self._dir, self._mode, *chunks)

    # -- an unusable directory, planted files ---------------------------------------------

    def note_unusable(self, operation: str, exc: OSError) -> None:
        """Report (rate-limited) an operation that failed because the directory is unusable."""
        self._health.unusable(operation, exc)

    def _stored(self, created: str | None) -> None:
        """An entry was written (and created at ``created``): count it; writes work again."""
        self._health.written()
        if created is not None and self._threshold:
            self._count_created(created)

    @degrades(None)
    def _count_created(self, path: str) -> None:
        self._count.note_created(path)

    def ping(self) -> None:
        """Write a probe file to the directory and remove it: raise if writes fail."""
        unlink(self._write_temp(pack_header(0.0)))

    # -- monitoring -----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The directory, its limits and what it holds (one listing of the directory)."""
        return {
            "backend": type(self).__name__,
            "directory": self._dir,
            "key_prefix": self._key_prefix,
            "threshold": self._threshold,
            "default_timeout": self.default_timeout,
            "clears": f"every entry of the directory {self._dir}, whatever its key prefix",
            **self.store_stats(),
        }

    def store_stats(self) -> dict[str, Any]:
        """Entries, their bytes and the group indexes in the directory, from one listing.

        Expired entries count until a read or a prune removes them; the names of the
        functions are not recoverable from the hashed file names.
        """
        return self._count.census()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cache_dir={self._dir!r}, threshold={self._threshold},"
            f" default_timeout={self.default_timeout})"
        )
