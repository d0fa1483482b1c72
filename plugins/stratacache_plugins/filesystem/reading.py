"""Reading entries: one ``open``, ``fstat``, ``read`` and ``close`` per lookup.

Part of :class:`~stratacache_plugins.filesystem.FileSystemCache`. A lookup hashes the key
into its file's path (remembered for the names used last, see :func:`.files.entry_path`),
opens the file without following a link or blocking (:func:`.files.open_file`, whose
``fstat`` refuses anything planted), reads it whole, parses the header with ``struct`` and
closes it. An expired entry is removed, an unreadable one is removed and logged: both are
misses. An unusable directory is a miss too (:func:`.failures.degraded`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stratacache import NO_VALUE, Backend, DeserializationError
from stratacache_plugins.filesystem.entry import HEADER, discard, expired, expiry
from stratacache_plugins.filesystem.failures import degraded, degrades
from stratacache_plugins.filesystem.files import PlantedFileError, open_file, read_file

if TYPE_CHECKING:
    from stratacache_plugins.filesystem.failures import DirectoryHealth

__all__ = ["FileReading"]

logger = logging.getLogger(__package__)  # stratacache_plugins.filesystem

_MISS: tuple[Any, float, float] = (NO_VALUE, 0.0, 0.0)


class FileReading(Backend):
    """The reads of a FileSystemCache: ``lookup``, ``lookup_entry`` and ``has``."""

    if TYPE_CHECKING:  # FileSystemCache's, declared for the type checker only
        _health: DirectoryHealth
        _clock: Callable[[], float]
        _key_prefix: str

        def _path(self, key: str, suffix: str = ...) -> str: ...
        def note_unusable(self, operation: str, exc: OSError) -> None: ...  # noqa: D102

    def lookup(self, key: str) -> Any:
        """Return the value of ``key`` or ``NO_VALUE``, in one read of its file."""
        try:
            return self._read(key)[0]
        except OSError as exc:
            return degraded(self, "lookup", exc, NO_VALUE)

    def lookup_entry(self, key: str) -> tuple[Any, float | None]:
        """Return ``(value, remaining)`` from one read of the file.

        ``remaining`` is the header's expiry minus this cache's clock (``math.inf`` for an
        entry that never expires).
        """
        try:
            value, expires, now = self._read(key)
        except OSError as exc:
            return degraded(self, "lookup entry", exc, (NO_VALUE, None))
        if value is NO_VALUE:
            return NO_VALUE, None
        return value, math.inf if expires == 0.0 else expires - now

    def _read(self, key: str) -> tuple[Any, float, float]:
        """The value of ``key`` (or ``NO_VALUE``), its expiry and the clock when it was read.

        One ``open``, one ``fstat`` (a planted file is refused, see :mod:`.files`), one
        ``read`` of the whole file and one ``close``; an expired or unreadable entry is
        removed and is a miss.
        """
        path = self._path(key)
        try:
            fd, found = open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            return _MISS
        except PlantedFileError as planted:
            self._health.planted(planted, f"the entry of {key!r}")
            return _MISS
        try:
            data = read_file(fd, found.st_size)
            expires, now = expiry(data), self._clock()
            if expired(expires, now):
                discard(path, fd)
                return _MISS
            return self.load_value(self._key_prefix + key, data[HEADER.size :]), expires, now
        except DeserializationError as exc:
            self._discard_unreadable(key, path, fd, exc)
            return _MISS
        finally:
            os.close(fd)

    @degrades(False)
    def has(self, key: str) -> bool:
        """Return whether ``key`` holds an unexpired entry, reading only its header."""
        path = self._path(key)
        try:
            fd, _found = open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except PlantedFileError as planted:
            self._health.planted(planted, f"the entry of {key!r}")
            return False
        try:
            if not expired(expiry(read_file(fd, HEADER.size)), self._clock()):
                return True
            discard(path, fd)
        except DeserializationError as exc:
            self._discard_unreadable(key, path, fd, exc)
        finally:
            os.close(fd)
        return False

    def _discard_unreadable(self, key: str, path: str, fd: int, exc: Exception) -> None:
        self.stats.deserialization_failures += 1
        logger.warning("FileSystemCache: deleting unreadable entry %r (%s): %s", key, path, exc)
        discard(path, fd)
