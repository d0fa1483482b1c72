"""The group index files of a FileSystemCache directory, and ``flock`` on its files.

A group index (``<hash>.group``) lists the keys of one group, a JSON string per line:
``set_tracked`` appends a line under a shared lock (one ``O_APPEND`` write, so the lines of
processes never interleave); compaction and ``clear_tracked`` replace or remove the index
under the exclusive lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable, Iterator

from stratacache_plugins.filesystem.entry import read_index, unlink

if sys.platform == "win32":
    HAS_FLOCK = False
else:
    import fcntl

    HAS_FLOCK = True
"""Whether this platform has ``fcntl.flock``: FileSystemCache refuses to start without it."""

__all__ = ["HAS_FLOCK", "GroupIndexes", "require_flock"]


def require_flock() -> None:
    """Refuse a platform without ``fcntl.flock``, rather than run without the locks.

    Raises:
        NotImplementedError: The platform has no ``fcntl.flock`` (Windows).
    """
    if not HAS_FLOCK:
        raise NotImplementedError(
            f"FileSystemCache needs fcntl.flock, which this platform ({sys.platform}) does not"
            " have: without it inc/dec, the key tracking and the pruning would not be atomic"
            " across processes. Use SimpleCache for a cache of one process, or a Redis backend"
            " (pip install 'stratacache[redis]') for a shared one"
        )


class GroupIndexes:
    """Locked operations on the index files (and the lock file) of one directory.

    Args:
        open_in_place: Opens a file written in place, never a planted one (see ``files``).
        write_temp: Writes bytes to a new temporary file of the directory; returns its path.
    """

    def __init__(
        self, open_in_place: Callable[[str, int], int], write_temp: Callable[[bytes], str]
    ) -> None:
        self._open = open_in_place
        self._write_temp = write_temp

    @contextlib.contextmanager
    def flocked(self, path: str, *, create: bool, shared: bool = False) -> Iterator[int | None]:
        """Yield a descriptor of the file at ``path`` under ``flock`` (None if it is absent).

        With ``create`` the file is opened to append, created if missing. Compaction and
        ``clear_tracked`` replace or unlink an index only under the exclusive lock, so a
        lock obtained on a file that is gone meanwhile is retried on the new one.
        """
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT if create else os.O_RDONLY
        while True:
            try:
                fd = self._open(path, flags)
            except FileNotFoundError:
                if create:
                    raise
                yield None
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink > 0:
                    yield fd
                    return
            finally:
                os.close(fd)

    def append(self, path: str, key: str) -> int:
        """Append ``key`` to the index at ``path``; return the index's size after it."""
        line = (json.dumps(key) + "\n").encode()
        with self.flocked(path, create=True, shared=True) as fd:
            assert fd is not None
            size = os.fstat(fd).st_size
            if os.write(fd, line) != len(line):  # a full disk can cut a write short
                raise OSError(errno.ENOSPC, "a short write to a group index", path)
        return size + len(line)

    def take(self, path: str) -> list[str]:
        """Remove the index at ``path``; return its keys (none if it is absent)."""
        with self.flocked(path, create=False) as fd:
            if fd is None:
                return []
            keys = read_index(fd)
            os.unlink(path)
        return keys

    def compact(self, path: str, keep: Callable[[str], bool]) -> int | None:
        """Rewrite the index at ``path`` with its keys that ``keep`` keeps, once each.

        Returns:
            The size of the new index, or None if there was no index.
        """
        with self.flocked(path, create=False) as fd:
            if fd is None:
                return None
            keys = [k for k in read_index(fd) if keep(k)]
            data = "".join(json.dumps(k) + "\n" for k in keys).encode()
            tmp = self._write_temp(data)
            try:
                os.replace(tmp, path)
            finally:
                unlink(tmp)
        return len(data)
