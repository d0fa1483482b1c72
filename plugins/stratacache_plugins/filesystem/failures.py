"""When the directory cannot be used: which errors those are, and the warnings about them.

An ``OSError`` whose errno says the store is unusable, for now or for good, degrades: a read
misses, a write or a delete fails (``False``, ``inc`` gives ``None``), it counts in
``stats.errors``, and a WARNING says so at most every :attr:`Trouble.interval` seconds.
Those errors are:

* no room: ``ENOSPC`` (a full disk), ``EDQUOT`` (a quota), ``EFBIG`` (a file size limit);
* no right: ``EROFS`` (a read-only mount), ``EACCES`` and ``EPERM`` (permissions, an
  immutable file, a protected directory);
* a failing device or mount: ``EIO``, ``ESTALE`` (NFS), ``ENOTCONN`` (a dead FUSE mount),
  ``ETIMEDOUT``;
* no resources: ``ENFILE``, ``EMFILE`` (out of file descriptors), ``ENOMEM``;
* a directory gone or replaced: ``ENOENT`` (removed under the cache), ``ENOTDIR``,
  ``EISDIR``, ``ELOOP``, ``ENXIO``, and a :class:`~.files.PlantedFileError` that could not be
  removed.

Any other ``OSError`` (``EBADF``, ``EINVAL``, ``ENAMETOOLONG``, ``EEXIST``, ``EXDEV``...) is
a bug, in the cache or in its configuration, and raises.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from typing import ClassVar, Concatenate, ParamSpec, Protocol, TypeVar

from stratacache.stats import BackendStats
from stratacache_plugins.filesystem.files import PlantedFileError, open_file, remove_planted

__all__ = [
    "UNUSABLE",
    "DirectoryHealth",
    "Trouble",
    "degraded",
    "degrades",
    "describe",
    "unusable",
]

_NAMES = (
    *("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "EIO", "ESTALE", "ENOTCONN"),
    *("ETIMEDOUT", "ENFILE", "EMFILE", "ENOMEM", "ENOENT", "ENOTDIR", "EISDIR", "ELOOP", "ENXIO"),
)
UNUSABLE = frozenset(getattr(errno, name) for name in _NAMES if hasattr(errno, name))
"""The errnos that say the store cannot be used (see the module docstring)."""


def unusable(exc: OSError) -> bool:
    """Return whether ``exc`` says the store cannot be used, rather than a bug."""
    return isinstance(exc, PlantedFileError) or exc.errno in UNUSABLE


class Trouble:
    """Rate-limited WARNINGs about one kind of trouble with one cache directory.

    One per directory and kind in a process (:meth:`of`), whatever the number of caches on
    it: a reconfiguration does not restart the limit. No lock (so nothing a ``fork()`` could
    inherit locked): threads racing on the first failure may let two warnings through.

    Args:
        logger: Where the warnings go.
        recovery: The warning logged by :meth:`recovered` (``%s``: the directory, ``%d``:
            the failures meanwhile), or None not to log one.
    """

    interval = 30.0
    """Least seconds between two warnings; the failures in between are counted in the next."""

    _known: ClassVar[dict[tuple[str, str], Trouble]] = {}

    def __init__(self, logger: logging.Logger, recovery: str | None = None) -> None:
        self._logger = logger
        self._recovery = recovery
        self._last = -math.inf
        self._unreported = 0
        self._warned = False  # since the last recovery
        self.failures = 0
        """Failures since the last recovery."""

    @classmethod
    def of(
        cls, directory: str, kind: str, logger: logging.Logger, recovery: str | None = None
    ) -> Trouble:
        """Return the :class:`Trouble` of ``kind`` for ``directory`` in this process."""
        key = (os.path.abspath(directory), kind)
        return cls._known.setdefault(key, cls(logger, recovery))  # atomic under the GIL

    def report(self, message: str) -> None:
        """Count a failure; log ``message``, unless a warning went out in the last interval."""
        now = time.monotonic()
        self.failures += 1
        if now - self._last < self.interval:
            self._unreported += 1
            return
        self._last, unreported, self._unreported = now, self._unreported, 0
        self._warned = True
        if unreported:
            message += f" ({unreported} more since the last warning)"
        self._logger.warning("%s", message)

    def recovered(self, directory: str) -> None:
        """Note that what failed works again: reset the count, log it if warned about.

        Only a recovery from failures that were warned about is logged, so operations that
        fail and work in turn log little.
        """
        failures, self.failures = self.failures, 0
        warned, self._warned = self._warned, False
        if warned and self._recovery is not None:
            self._logger.warning(self._recovery, directory, failures)


class _Degrading(Protocol):
    @property
    def stats(self) -> BackendStats: ...

    def note_unusable(self, operation: str, exc: OSError) -> None: ...


_Cache = TypeVar("_Cache", bound=_Degrading)
_P = ParamSpec("_P")
_R = TypeVar("_R")
_F = TypeVar("_F")


def degrades(
    fallback: _F,
) -> Callable[[Callable[Concatenate[_Cache, _P], _R]], Callable[Concatenate[_Cache, _P], _R | _F]]:
    """Decorate a method of the cache: an unusable-store error gives ``fallback`` instead.

    The error counts in ``stats.errors`` and is reported through ``note_unusable``; any
    other exception goes through.
    """

    def decorate(
        method: Callable[Concatenate[_Cache, _P], _R],
    ) -> Callable[Concatenate[_Cache, _P], _R | _F]:
        operation = method.__name__.strip("_").replace("_", " ")

        @functools.wraps(method)
        def degrading(self: _Cache, /, *args: _P.args, **kwargs: _P.kwargs) -> _R | _F:
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                return degraded(self, operation, exc, fallback)

        return degrading

    return decorate


def degraded(cache: _Cache, operation: str, exc: OSError, fallback: _F) -> _F:
    """What :func:`degrades` does with an ``OSError`` of ``operation``: ``fallback``, or raise.

    For a hot method that catches the error itself rather than pay for the decorator's
    ``*args, **kwargs`` call.

    Raises:
        OSError: ``exc`` itself, when it is not an unusable-store error (a bug).
    """
    if not unusable(exc):
        raise exc
    cache.stats.errors += 1
    cache.note_unusable(operation, exc)
    return fallback


def describe(exc: OSError) -> str:
    """``exc`` in a few words: its errno's name and message, and the path."""
    if isinstance(exc, PlantedFileError):
        return f"{exc.what} is planted at {exc.path}"
    name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    where = f": {exc.filename}" if exc.filename else ""
    return f"{name} {exc.strerror or exc}{where}"


class DirectoryHealth:
    """What goes wrong with one cache directory: it is unusable, or files are planted in it.

    Args:
        directory: The cache directory.
        mode: Permissions of the files it creates.
        logger: Where the (rate-limited) warnings go.
        stats: Returns the cache's counters (the stack replaces the object: read it late).
    """

    def __init__(
        self, directory: str, mode: int, logger: logging.Logger, stats: Callable[[], BackendStats]
    ) -> None:
        self._dir, self._mode, self._stats = directory, mode, stats
        recovery = "FileSystemCache: %s takes writes again (%d failures)"
        self._unusable = Trouble.of(directory, "unusable", logger, recovery)
        self._planted = Trouble.of(directory, "planted", logger)

    def unusable(self, operation: str, exc: OSError) -> None:
        """Report an operation that failed because the directory is unusable."""
        self._unusable.report(
            f"FileSystemCache: {operation} failed in {self._dir} ({describe(exc)}); reads miss"
            " what they cannot read and writes fail until it recovers"
        )

    def written(self) -> None:
        """A write went through: if writes were failing, they work again."""
        if self._unusable.failures:
            self._unusable.recovered(self._dir)

    def planted(self, planted: PlantedFileError, what: str) -> None:
        """Count, remove (never follow) and report a planted file found as ``what``.

        A planted entry counts as an unreadable one (``deserialization_failures``); one
        planted as the count, the lock or an index, as an error.
        """
        if what.startswith("the entry"):
            self._stats().deserialization_failures += 1
        else:
            self._stats().errors += 1
        removed = "removed" if remove_planted(planted) else "left there"
        self._planted.report(
            f"FileSystemCache: {planted.what} was planted as {what} ({planted.path}):"
            f" {removed}, never followed"
        )

    def open_in_place(self, path: str, flags: int) -> int:
        """Open a file written in place (the count, the lock, an index), never a planted one.

        What is planted there is removed and the open retried, once; a second planted file
        raises :class:`~.files.PlantedFileError`.
        """
        try:
            return open_file(path, flags, self._mode, in_place=True)[0]
        except PlantedFileError as planted:
            self.planted(planted, os.path.basename(path))
        return open_file(path, flags, self._mode, in_place=True)[0]
