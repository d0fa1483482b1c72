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

from stratacache import DeserializationError
from stratacache_plugins.filesystem.entry import (
    COUNT_FILE,
    ENTRY,
    HEADER,
    STALE_TEMP_SECONDS,
    TEMP,
    discard,
    expired,
    expiry,
    unlink,
)

if sys.platform != "win32":
    import fcntl

__all__ = ["EntryCount"]


class EntryCount:
    """The shared entry count of one cache directory, and its prune past the threshold.

    Args:
        directory: The cache directory.
        threshold: Maximum entry count; 0 = no limit (nothing is counted).
        mode: Permissions of the count file.
        clock: The cache's clock, which expiry follows.
        kind: Returns the suffix of a file the cache makes, or None for any other file.
        lock: Held while pruning: one prune at a time in this process.
    """

    def __init__(  # noqa: PLR0917 (an internal constructor)
        self,
        directory: str,
        threshold: int,
        mode: int,
        clock: Callable[[], float],
        kind: Callable[[str], str | None],
        lock: threading.Lock,
    ) -> None:
        self._dir = directory
        self._threshold = threshold
        self._mode = mode
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
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._mode)
            try:
                missing = entries - os.fstat(fd).st_size
                if missing > 0:
                    os.write(fd, b"\0" * missing)
            finally:
                os.close(fd)

    def note_created(self, path: str) -> None:
        """Count the entry just created at ``path``; past the threshold, prune."""
        if not self._threshold:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._mode)
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
        if sys.platform == "win32":
            self._remove_expired_then_oldest(keep, count_fd)
            return
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
                    if kind == TEMP and entry.stat().st_mtime < stale:
                        os.unlink(entry.path)
                    elif kind == ENTRY:
                        with open(entry.path, "rb") as file:
                            try:
                                fresh = not expired(expiry(file.read(HEADER.size)), now)
                            except DeserializationError:
                                fresh = False
                            if fresh:
                                live.append((os.fstat(file.fileno()).st_mtime_ns, entry.path))
                            else:
                                discard(entry.path, file.fileno())
        target = max(1, self._threshold * 9 // 10)
        live.sort()
        oldest = [path for _mtime, path in live if path != keep]
        for path in oldest[: max(0, len(live) - target)]:
            unlink(path)
        # Entries other processes created meanwhile stay counted (some twice: errs high).
        meanwhile = max(0, os.fstat(count_fd).st_size - counted)
        os.ftruncate(count_fd, min(len(live), target) + meanwhile)
