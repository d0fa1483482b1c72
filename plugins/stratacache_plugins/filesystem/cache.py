"""FileSystemCache: the cache of a directory (its files are described in ``entry``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any, Protocol

import platformdirs

from stratacache import NO_VALUE, Backend, DeserializationError, Serializer, Timeout, renew_in_child
from stratacache_plugins.filesystem.entry import (
    ENTRY,
    HEADER,
    INDEX,
    LOCK_FILE,
    STALE_TEMP_SECONDS,
    TEMP,
    TEMP_PREFIX,
    FileKinds,
    discard,
    expired,
    expiry,
    pack_header,
    read_index,
    unlink,
)
from stratacache_plugins.filesystem.options import FileSystemCacheOptions
from stratacache_plugins.filesystem.pruning import EntryCount

if sys.platform != "win32":
    import fcntl

__all__ = ["FileSystemCache"]

logger = logging.getLogger(__package__)  # stratacache_plugins.filesystem, as before the split


class _Digest(Protocol):
    def hexdigest(self) -> str: ...


class FileSystemCache(Backend):
    """Cache in a directory: entries survive restarts and are shared by local processes.

    ``inc``/``dec`` and the key tracking take ``fcntl.flock`` locks (on ``stratacache.lock``
    and the group index files), so they are atomic across threads and processes on Linux and
    other POSIX systems; on Windows, only across threads. ``clear()`` removes every entry of
    the directory, whatever its ``key_prefix``, but never a file it did not create (nor the
    temporary file of a write still in progress). I/O errors other than a missing file raise
    :class:`OSError`.

    Args:
        cache_dir: The directory, created if missing (default: the user cache directory,
            ``platformdirs.user_cache_dir("stratacache")``).
        threshold: Maximum entry count, shared by every process of the directory: each
            entry created appends one byte to ``stratacache.count``, and past the threshold
            one process lists the directory to remove expired entries, then the oldest, down
            to 90% of it. Writes racing with a prune may exceed it by a few entries.
            ``0`` means no limit.
        default_timeout: Seconds an entry lives when ``set`` gets no timeout; 0 = forever.
        mode: Permissions of the files (default ``0o600``).
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
        os.makedirs(self._dir, exist_ok=True)
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
        self._count = EntryCount(self._dir, threshold, self._mode, clock, self._kind, self._lock)
        if threshold:
            self._count.count_existing_entries()

    # -- reads ----------------------------------------------------------------------------

    def lookup(self, key: str) -> Any:
        """Return the value of ``key`` or ``NO_VALUE``, in one read of its file."""
        return self.lookup_entry(key)[0]

    def lookup_entry(self, key: str) -> tuple[Any, float | None]:
        """Return ``(value, remaining)`` from one read of the file.

        ``remaining`` is the header's expiry minus this cache's clock (``math.inf`` for an
        entry that never expires).
        """
        path = self._path(key)
        try:
            file = open(path, "rb")  # noqa: SIM115 (closed below, after a possible discard)
        except FileNotFoundError:
            return NO_VALUE, None
        with file:
            data = file.read()
            try:
                expires, now = expiry(data), self._clock()
                if expired(expires, now):
                    discard(path, file.fileno())
                    return NO_VALUE, None
                value = self.load_value(self._key_prefix + key, data[HEADER.size :])
            except DeserializationError as exc:
                self._discard_unreadable(key, path, file.fileno(), exc)
                return NO_VALUE, None
        return value, math.inf if expires == 0.0 else expires - now

    def has(self, key: str) -> bool:
        """Return whether ``key`` holds an unexpired entry, reading only its header."""
        path = self._path(key)
        try:
            file = open(path, "rb")  # noqa: SIM115 (closed below, after a possible discard)
        except FileNotFoundError:
            return False
        with file:
            try:
                if not expired(expiry(file.read(HEADER.size)), self._clock()):
                    return True
                discard(path, file.fileno())
            except DeserializationError as exc:
                self._discard_unreadable(key, path, file.fileno(), exc)
        return False

    # -- writes ---------------------------------------------------------------------------

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` under ``key``; a serialization error raises and writes nothing."""
        path = self._path(key)
        tmp = self._write_entry(key, value, timeout)
        try:
            created = not os.path.lexists(path)
            os.replace(tmp, path)
        except BaseException:
            unlink(tmp)
            raise
        if created:
            self._count.note_created(path)
        return True

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
                    self._count.note_created(path)
                    return True
            os.replace(tmp, path)  # expired entries keep appearing: overwrite, best effort
            return True
        finally:
            unlink(tmp)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether its file was there."""
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return False
        return True

    def clear(self) -> bool:
        """Remove every entry and group index of the directory (see the class docstring)."""
        stale = time.time() - STALE_TEMP_SECONDS
        with self._lock, os.scandir(self._dir) as listing:
            for entry in listing:
                kind = self._kind(entry.name)
                with contextlib.suppress(FileNotFoundError):
                    if kind in (ENTRY, INDEX) or (kind == TEMP and entry.stat().st_mtime < stale):
                        os.unlink(entry.path)
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self._count.path, 0)
        return True

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add ``delta`` to the number under ``key`` (missing counts as 0), atomically."""
        with self._inc_lock, self._flocked(self._lock_path, create=True):
            new: int = (self.get(key) or 0) + delta
            self.set(key, new)
        return new

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Subtract ``delta`` from the number under ``key`` (missing counts as 0), atomically."""
        return self.inc(key, -delta)

    # -- key tracking ---------------------------------------------------------------------

    def set_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store ``value``, then append ``key`` to the index file of ``group``."""
        stored = self.set(key, value, timeout)
        if group is not None:
            path = self._path(group, INDEX)
            line = (json.dumps(key) + "\n").encode()
            with self._flocked(path, create=True, shared=True) as fd:
                assert fd is not None
                size = os.fstat(fd).st_size
                os.write(fd, line)  # one O_APPEND write: lines of processes never interleave
            if size + len(line) > self._index_bounds.get(path, self._index_min_size):
                self._compact(path)
        return stored

    def clear_tracked(self, group: str) -> int:
        """Delete the entries listed in ``group``'s index, then the index; return how many."""
        path = self._path(group, INDEX)
        with self._flocked(path, create=False) as fd:
            if fd is None:
                return 0
            keys = read_index(fd)
            os.unlink(path)
        return sum(self.delete(key) for key in keys)

    def _compact(self, path: str) -> None:
        """Rewrite an index with its keys that still have an entry, once each."""
        with self._flocked(path, create=False) as fd:
            if fd is None:
                return
            keys = [k for k in read_index(fd) if os.path.exists(self._path(k))]
            data = "".join(json.dumps(k) + "\n" for k in keys).encode()
            tmp = self._write_temp(data)
            try:
                os.replace(tmp, path)
            finally:
                unlink(tmp)
        self._index_bounds[path] = max(self._index_min_size, 2 * len(data))

    @contextlib.contextmanager
    def _flocked(self, path: str, *, create: bool, shared: bool = False) -> Iterator[int | None]:
        """Yield a descriptor of the file at ``path`` under ``flock`` (None if it is absent).

        With ``create`` the file is opened to append, created if missing. Compaction and
        ``clear_tracked`` replace or unlink an index only under the exclusive lock, so a
        lock obtained on a file that is gone meanwhile is retried on the new one.
        """
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT if create else os.O_RDONLY
        while True:
            try:
                fd = os.open(path, flags, self._mode)
            except FileNotFoundError:
                if create:
                    raise
                yield None
                return
            try:
                if sys.platform != "win32":
                    fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink > 0:
                    yield fd
                    return
            finally:
                os.close(fd)

    # -- internals ------------------------------------------------------------------------

    def _path(self, key: str, suffix: str = ENTRY) -> str:
        name = self._key_prefix + key
        digest = self._hash_method(name.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self._dir, digest + suffix)

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
        fd, tmp = tempfile.mkstemp(suffix=TEMP, prefix=TEMP_PREFIX, dir=self._dir)
        try:
            with open(fd, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
            os.chmod(tmp, self._mode)
        except BaseException:
            unlink(tmp)
            raise
        return tmp

    def _discard_unreadable(self, key: str, path: str, fd: int, exc: Exception) -> None:
        self.stats.deserialization_failures += 1
        logger.warning("FileSystemCache: deleting unreadable entry %r (%s): %s", key, path, exc)
        discard(path, fd)

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
        entries = groups = size = 0
        with os.scandir(self._dir) as listing:
            for entry in listing:
                kind = self._kind(entry.name)
                with contextlib.suppress(FileNotFoundError):
                    if kind == ENTRY:
                        entries += 1
                        size += entry.stat().st_size
                    elif kind == INDEX:
                        groups += 1
        return {"entries": entries, "bytes": size, "tracked_groups": groups}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cache_dir={self._dir!r}, threshold={self._threshold},"
            f" default_timeout={self.default_timeout})"
        )
