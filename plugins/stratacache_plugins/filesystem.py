"""FileSystemCache: entries as files in a directory, shared by every process of the machine.

Each key is one file named after the hash of the (prefixed) key, so no key can reach outside
the directory. A file holds a 16-byte header (magic bytes, format version, expiry as a
float64 UNIX time, 0.0 = never) followed by the serializer's bytes. Files are written to a
temporary file first and moved into place, so a reader sees the old entry or the new one,
never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any, Protocol

import platformdirs
from pydantic import field_validator

from stratacache import NO_VALUE, Backend, DeserializationError, Serializer, Timeout
from stratacache.options import option
from stratacache_plugins._options import PluginOptions

if sys.platform != "win32":
    import fcntl

__all__ = ["FileSystemCache", "FileSystemCacheOptions"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<4sB3xd")  # magic, format version, padding, expiry (0.0 = never)
_MAGIC = b"STRC"
_VERSION = 1
_ENTRY, _INDEX, _TEMP = ".entry", ".group", ".tmp"
_TEMP_PREFIX = "stratacache-"
_LOCK_FILE = "stratacache.lock"
_COUNT_FILE = "stratacache.count"  # its size is the entry count, shared by every process
_STALE_TEMP_SECONDS = 60.0  # a temp file this old was left by a killed writer


class _Digest(Protocol):
    def hexdigest(self) -> str: ...


class FileSystemCacheOptions(PluginOptions):
    """The options of FileSystemCache."""

    cache_dir: str | None = option(
        None,
        key="DIR",
        accepts="a directory path",
        description="Directory of FileSystemCache (default: the user cache directory).",
    )
    threshold: int = option(
        500,
        key="THRESHOLD",
        accepts="a whole number >= 0 (0 = no limit)",
        description="Maximum entry count of a bounded shared backend (FileSystemCache).",
        ge=0,
    )
    mode: int | None = option(
        None,
        key=None,
        accepts="file permissions as a whole number, e.g. 384 or '0o600'",
        description="Permissions of the entry files (default 0o600).",
        ge=0,
        le=0o7777,
    )

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("mode", mode="before")
    @classmethod
    def _octal_text(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower().startswith("0o"):
            try:
                return int(value.strip(), 8)
            except ValueError:
                raise ValueError("not an octal number; write e.g. 0o600 or 384") from None
        return value

    @field_validator("cache_dir")
    @classmethod
    def _check_dir(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("empty; give a directory path, or unset it for the default")
        if value is not None and os.path.exists(value) and not os.path.isdir(value):
            raise ValueError("not a directory; give a directory path (created if missing)")
        return value


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
        self._index_bounds: dict[str, int] = {}
        self._lock_path = os.path.join(self._dir, _LOCK_FILE)
        self._count_path = os.path.join(self._dir, _COUNT_FILE)
        digits = len(hash_method(b"").hexdigest())
        self._own_file = re.compile(
            rf"[0-9a-f]{{{digits}}}\.(?:entry|group)|{_TEMP_PREFIX}\w+\.tmp"
        )
        if threshold:
            self._count_existing_entries()

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
                expires, now = _expiry(data), self._clock()
                if _expired(expires, now):
                    self._discard(path, file.fileno())
                    return NO_VALUE, None
                value = self.load_value(self._key_prefix + key, data[_HEADER.size :])
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
                if not _expired(_expiry(file.read(_HEADER.size)), self._clock()):
                    return True
                self._discard(path, file.fileno())
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
            _unlink(tmp)
            raise
        if created:
            self._note_created(path)
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
                    self._note_created(path)
                    return True
            os.replace(tmp, path)  # expired entries keep appearing: overwrite, best effort
            return True
        finally:
            _unlink(tmp)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether its file was there."""
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return False
        return True

    def clear(self) -> bool:
        """Remove every entry and group index of the directory (see the class docstring)."""
        stale = time.time() - _STALE_TEMP_SECONDS
        with self._lock, os.scandir(self._dir) as listing:
            for entry in listing:
                kind = self._kind(entry.name)
                with contextlib.suppress(FileNotFoundError):
                    if kind in (_ENTRY, _INDEX) or (
                        kind == _TEMP and entry.stat().st_mtime < stale
                    ):
                        os.unlink(entry.path)
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self._count_path, 0)
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
            path = self._path(group, _INDEX)
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
        path = self._path(group, _INDEX)
        with self._flocked(path, create=False) as fd:
            if fd is None:
                return 0
            keys = _read_index(fd)
            os.unlink(path)
        return sum(self.delete(key) for key in keys)

    def _compact(self, path: str) -> None:
        """Rewrite an index with its keys that still have an entry, once each."""
        with self._flocked(path, create=False) as fd:
            if fd is None:
                return
            keys = [k for k in _read_index(fd) if os.path.exists(self._path(k))]
            data = "".join(json.dumps(k) + "\n" for k in keys).encode()
            tmp = self._write_temp(data)
            try:
                os.replace(tmp, path)
            finally:
                _unlink(tmp)
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

    def _kind(self, name: str) -> str | None:
        """Return the suffix of a file this cache makes, or None for any other file."""
        return os.path.splitext(name)[1] if self._own_file.fullmatch(name) else None

    def _path(self, key: str, suffix: str = _ENTRY) -> str:
        name = self._key_prefix + key
        digest = self._hash_method(name.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self._dir, digest + suffix)

    def _header(self, timeout: Timeout) -> bytes:
        seconds = self.timeout_seconds(timeout)
        return _HEADER.pack(_MAGIC, _VERSION, 0.0 if seconds == 0 else self._clock() + seconds)

    def _write_entry(self, key: str, value: Any, timeout: Timeout) -> str:
        """Write ``key``'s entry to a temporary file; return its path.

        The header, then the payload, signed under the key's full name (prefix included).
        """
        return self._write_temp(
            self._header(timeout), self.dump_value(self._key_prefix + key, value)
        )

    def _write_temp(self, *chunks: bytes) -> str:
        """Write ``chunks`` to a new temporary file of the directory; return its path."""
        fd, tmp = tempfile.mkstemp(suffix=_TEMP, prefix=_TEMP_PREFIX, dir=self._dir)
        try:
            with open(fd, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
            os.chmod(tmp, self._mode)
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def _discard(self, path: str, fd: int) -> None:
        """Remove the entry at ``path`` if it is still the file open as ``fd``, not a newer one."""
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)

    def _discard_unreadable(self, key: str, path: str, fd: int, exc: Exception) -> None:
        self.stats.deserialization_failures += 1
        logger.warning("FileSystemCache: deleting unreadable entry %r (%s): %s", key, path, exc)
        self._discard(path, fd)

    def _count_existing_entries(self) -> None:
        """Make the shared count at least the entries there are (written before it was kept)."""
        with os.scandir(self._dir) as listing:
            entries = sum(1 for e in listing if self._kind(e.name) == _ENTRY)
        if entries:
            fd = os.open(self._count_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._mode)
            try:
                missing = entries - os.fstat(fd).st_size
                if missing > 0:
                    os.write(fd, b"\0" * missing)
            finally:
                os.close(fd)

    def _note_created(self, path: str) -> None:
        """Count the entry just created at ``path``; past the threshold, prune.

        Every process of the directory counts in the same file: one byte appended per entry
        created (an ``O_APPEND`` write is atomic), truncated by a prune to the entries left.
        Deletions are not counted, so the count errs high: a prune comes early, never late.
        """
        if not self._threshold:
            return
        fd = os.open(self._count_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._mode)
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
        now, stale = self._clock(), time.time() - _STALE_TEMP_SECONDS
        live: list[tuple[int, str]] = []
        with os.scandir(self._dir) as listing:
            for entry in listing:
                kind = self._kind(entry.name)
                with contextlib.suppress(FileNotFoundError):
                    if kind == _TEMP and entry.stat().st_mtime < stale:
                        os.unlink(entry.path)
                    elif kind == _ENTRY:
                        with open(entry.path, "rb") as file:
                            try:
                                fresh = not _expired(_expiry(file.read(_HEADER.size)), now)
                            except DeserializationError:
                                fresh = False
                            if fresh:
                                live.append((os.fstat(file.fileno()).st_mtime_ns, entry.path))
                            else:
                                self._discard(entry.path, file.fileno())
        target = max(1, self._threshold * 9 // 10)
        live.sort()
        oldest = [path for _mtime, path in live if path != keep]
        for path in oldest[: max(0, len(live) - target)]:
            _unlink(path)
        # Entries other processes created meanwhile stay counted (some twice: errs high).
        meanwhile = max(0, os.fstat(count_fd).st_size - counted)
        os.ftruncate(count_fd, min(len(live), target) + meanwhile)

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
                    if kind == _ENTRY:
                        entries += 1
                        size += entry.stat().st_size
                    elif kind == _INDEX:
                        groups += 1
        return {"entries": entries, "bytes": size, "tracked_groups": groups}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cache_dir={self._dir!r}, threshold={self._threshold},"
            f" default_timeout={self.default_timeout})"
        )


def _expiry(header: bytes) -> float:
    """Return the expiry time held in an entry's header, which must start ``header``."""
    if len(header) < _HEADER.size:
        raise DeserializationError(f"truncated header ({len(header)} bytes)")
    magic, version, expires = _HEADER.unpack_from(header)
    if magic != _MAGIC:
        raise DeserializationError(f"not a stratacache entry (magic bytes {magic!r})")
    if version != _VERSION:
        raise DeserializationError(f"unsupported entry format version {version}")
    if not math.isfinite(expires) or expires < 0:
        raise DeserializationError(f"invalid expiry time {expires!r}")
    return float(expires)


def _expired(expires: float, now: float) -> bool:
    return expires != 0.0 and expires <= now


def _read_index(fd: int) -> list[str]:
    """Return the keys of an index file, once each, in order; unreadable lines are skipped."""
    with open(fd, "rb", closefd=False) as file:
        lines = file.read().splitlines()
    keys: dict[str, None] = {}
    for line in lines:
        with contextlib.suppress(ValueError):
            key = json.loads(line)
            if isinstance(key, str):
                keys[key] = None
    return list(keys)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
