"""The entry count of a FileSystemCache directory, shared by its processes, and the prune.

Every process of the directory counts in the same file, ``stratacache.count``: one byte
appended per entry created (an ``O_APPEND`` write is atomic), truncated by a prune to the
entries left. Deletions are not counted, so the count errs high: a prune comes early, never
late. Past the threshold, one process lists the directory to remove expired entries, then the
oldest, down to 90% of it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stratacache import DeserializationError
from stratacache_plugins.filesystem.entry import (
    COUNT_FILE,
    ENTRY,
    HEADER,
    INDEX,
    STALE_TEMP_SECONDS,
    TEMP,
    discard,
    expired,
    expiry,
    unlink,
)
from stratacache_plugins.filesystem.files import PlantedFileError, open_file, read_file

if TYPE_CHECKING:
    from stratacache_plugins.filesystem.failures import DirectoryHealth

if sys.platform != "win32":
    import fcntl

__all__ = ["EntryCount"]


class EntryCount:
    """The shared entry count of one cache directory, and its prune past the threshold.

    Args:
        directory: The cache directory.
        threshold: Maximum entry count; 0 = no limit (nothing is counted).
        clock: The cache's clock, which expiry follows.
        kind: Returns the suffix of a file the cache makes, or None for any other file.
        lock: Held while pruning: one prune at a time in this process.
        health: Opens the count file (never a planted one) and handles planted entries.
    """

    def __init__(  # noqa: PLR0917 (an internal constructor)
        self,
        directory: str,
        threshold: int,
        clock: Callable[[], float],
        kind: Callable[[str], str | None],
        lock: threading.Lock,
        health: DirectoryHealth,
    ) -> None:
        self._dir = directory
        self._threshold = threshold
        self._health = health
        self._clock = clock
        self._kind = kind
        self._lock = lock
        self.path = os.path.join(directory, COUNT_FILE)
        """The count file: its size is the entry count."""

    def count_existing_entries(self) -> None:
        """Make the shared count at least the entries there are (written before it was kept)."""
        with os.scandir(self._dir) as listing:
            entries = sum(1 for e in listing if self._kind(e.name) == ENTRY)
        if entries:
            fd = self._health.open_in_place(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                missing = entries - os.fstat(fd).st_size
                if missing > 0:
                    os.write(fd, b"\0" * missing)
            finally:
                os.close(fd)

    def reset(self) -> None:
        """Count no entry (``clear``)."""
        try:
            fd = self._health.open_in_place(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def census(self) -> dict[str, Any]:
        """Entries, their bytes and the group indexes in the directory, from one listing.

        Expired entries count until a read or a prune removes them; the names of the
        functions are not recoverable from the hashed file names.
        """
        entries = groups = size = 0
        with os.scandir(self._dir) as listing:
            for entry in listing:
                kind = self._kind(entry.name)
                with contextlib.suppress(FileNotFoundError):
                    if kind == ENTRY:
                        entries += 1
                        size += entry.stat(follow_symlinks=False).st_size
                    elif kind == INDEX:
                        groups += 1
        return {"entries": entries, "bytes": size, "tracked_groups": groups}

    def note_created(self, path: str) -> None:
        """Count the entry just created at ``path``; past the threshold, prune."""
        if not self._threshold:
            return
        fd = self._health.open_in_place(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b"\0")
            if os.fstat(fd).st_size > self._threshold:
                with self._lock:
                    self._prune(path, fd)
        finally:
            os.close(fd)

    def _prune(self, keep: str, count_fd: int) -> None:
        """Prune, one process at a time (``flock`` on the count file).

        A writer past the threshold waits for a prune in progress, so writers cannot outrun
        it: the count exceeds the threshold by at most one entry per concurrent writer.
        """
        fcntl.flock(count_fd, fcntl.LOCK_EX)
        try:
            self._remove_expired_then_oldest(keep, count_fd)
        finally:
            fcntl.flock(count_fd, fcntl.LOCK_UN)

    def _remove_expired_then_oldest(self, keep: str, count_fd: int) -> None:
        """List the directory once: drop stale temp files, expired entries, then the oldest.

        The entry just written (``keep``) is never among the oldest, even when coarse file
        time stamps tie it with older ones.
        """
        counted = os.fstat(count_fd).st_size
        if counted <= self._threshold:
            return  # pruned while this writer waited
        now, stale = self._clock(), time.time() - STALE_TEMP_SECONDS
        live: list[tuple[int, str]] = []
        with os.scandir(self._dir) as listing:
            for entry in listing:
                kind = self._kind(entry.name)
                with contextlib.suppress(FileNotFoundError):
                    if kind == TEMP and entry.stat(follow_symlinks=False).st_mtime < stale:
                        os.unlink(entry.path)
                    elif kind == ENTRY:
                        try:
                            fd, found = open_file(entry.path, os.O_RDONLY)
                        except PlantedFileError as planted:
                            self._health.planted(planted, "the entry of a key")
                            continue
                        try:
                            try:
                                fresh = not expired(expiry(read_file(fd, HEADER.size)), now)
                            except DeserializationError:
                                fresh = False
                            if fresh:
                                live.append((found.st_mtime_ns, entry.path))
                            else:
                                discard(entry.path, fd)
                        finally:
                            os.close(fd)
        target = max(1, self._threshold * 9 // 10)
        live.sort()
        oldest = [path for _mtime, path in live if path != keep]
        for path in oldest[: max(0, len(live) - target)]:
            unlink(path)
        # Entries other processes created meanwhile stay counted (some twice: errs high).
        meanwhile = max(0, os.fstat(count_fd).st_size - counted)
        os.ftruncate(count_fd, min(len(live), target) + meanwhile)
