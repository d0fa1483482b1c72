"""Opening the files of a cache directory without following what someone planted there.

Whoever can write in the directory can put anything at the path of an entry, of the count
file, of the lock file or of a group index: a symbolic link to a file elsewhere (which the
cache would read, append to or truncate), a FIFO (whose open or read blocks forever), a
socket, a device, a directory, or a hard link to a file elsewhere. Every file of the cache
is therefore opened with ``O_NOFOLLOW`` (a symbolic link is refused, never followed) and
``O_NONBLOCK`` (a FIFO cannot block the open), then checked with ``fstat``: anything but a
regular file is *planted*. Files written in place (the count, the lock, the indexes) must
also have a single link, since writing through a hard link would change its other name.
A planted file is removed, never followed (removing a link leaves its target alone); a
planted directory stays.

The cache directory itself is made owner-only when the cache creates it.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from stratacache import key_type_error
from stratacache_plugins.filesystem.entry import TEMP, TEMP_PREFIX, unlink

__all__ = [
    "PlantedFileError",
    "directory_mode",
    "entry_path",
    "make_directory",
    "open_file",
    "read_file",
    "remove_planted",
    "str_key",
    "write_temp",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where links need privileges
_SAFE = _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_SAFE |= getattr(os, "O_BINARY", 0)

# What a refused open means: O_NOFOLLOW on a link fails with ELOOP (EMLINK on FreeBSD), a
# FIFO without a reader opened to write with O_NONBLOCK, or a socket, with ENXIO.
_REFUSED = {
    errno.ELOOP: "a symbolic link",
    errno.EMLINK: "a symbolic link",
    errno.ENXIO: "a FIFO or a socket",
    errno.EISDIR: "a directory",
}


class PlantedFileError(OSError):
    """Something else than a regular file of the cache is at one of its paths.

    Attributes:
        path: The path.
        what: What is there, in words ("a symbolic link", "a FIFO"...).
        inode: ``(st_dev, st_ino)`` of what was opened, or None when the open was refused.
    """

    def __init__(self, path: str, what: str, inode: tuple[int, int] | None = None) -> None:
        super().__init__(errno.EINVAL, f"{what} is planted there", path)
        self.path, self.what, self.inode = path, what, inode


def _what(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a file of an unknown type"


def open_file(
    path: str, flags: int, mode: int = 0o600, *, in_place: bool = False
) -> tuple[int, os.stat_result]:
    """Open the regular file at ``path`` without following a link or blocking.

    Args:
        path: A path of the cache directory.
        flags: ``os.open`` flags; ``O_NOFOLLOW``, ``O_NONBLOCK`` and ``O_CLOEXEC`` are added.
        mode: Permissions of a file ``O_CREAT`` creates.
        in_place: The file is written in place, so a hard link is planted too.

    Returns:
        The descriptor, and the ``fstat`` of the file.

    Raises:
        FileNotFoundError: Nothing is at ``path`` (and ``flags`` do not create it).
        PlantedFileError: Something else than a regular file (with one link) is there.
    """
    try:
        fd = os.open(path, flags | _SAFE, mode)
    except OSError as exc:
        what = _REFUSED.get(exc.errno or 0)
        if what is None:
            raise
        raise PlantedFileError(path, what) from exc
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise PlantedFileError(path, _what(found.st_mode), (found.st_dev, found.st_ino))
        if in_place and found.st_nlink > 1:
            raise PlantedFileError(path, "a hard link", (found.st_dev, found.st_ino))
    except BaseException:
        os.close(fd)
        raise
    return fd, found


def read_file(fd: int, size: int) -> bytes:
    """Read ``size`` bytes (or up to the end) of the file open as ``fd``, from where it is."""
    data = os.read(fd, size)
    while 0 < len(data) < size:  # a short read is allowed, if rare
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data


def remove_planted(planted: PlantedFileError) -> bool:
    """Remove what ``planted`` found, if it is still there; return whether it went.

    Only the name is removed (a link's target, a hard link's other names stay). A directory
    stays, and so does a regular file now at the path unless it is the planted hard link.
    """
    try:
        found = os.lstat(planted.path)
        if stat.S_ISDIR(found.st_mode):
            return False
        if planted.inode is not None:
            if planted.inode != (found.st_dev, found.st_ino):
                return False  # replaced meanwhile, by a writer of the cache
        elif stat.S_ISREG(found.st_mode):
            return False  # the refused link was replaced by a real entry meanwhile
        os.unlink(planted.path)
    except FileNotFoundError:
        pass
    return True


def directory_mode(file_mode: int) -> int:
    """Return the mode to create a cache directory with, whose files get ``file_mode``.

    ``0o700``, plus read and search for the group or others when ``file_mode`` lets them
    read the files; never write.
    """
    mode = 0o700
    if file_mode & 0o040:
        mode |= 0o050
    if file_mode & 0o004:
        mode |= 0o005
    return mode


def make_directory(path: str, file_mode: int) -> str | None:
    """Create the cache directory at ``path`` (see :func:`directory_mode`) if it is missing.

    Returns:
        None, or when the directory was there and others can write in it, a warning that
        says so: whoever can write there can plant or remove files.
    """
    try:
        os.makedirs(path, mode=directory_mode(file_mode))
    except FileExistsError:
        pass
    else:
        return None
    if sys.platform == "win32":
        return None  # no permission bits
    found = os.stat(path)
    writers = [who for who, bit in (("its group", 0o020), ("others", 0o002)) if found.st_mode & bit]
    if not writers or not stat.S_ISDIR(found.st_mode):
        return None
    return (
        f"FileSystemCache: the directory {path} is writable by {' and '.join(writers)}"
        f" (mode {stat.S_IMODE(found.st_mode):o}): whoever can write there can plant or remove"
        f" entries; make it owner-only (chmod 700 {path}) or use a directory of your own"
    )


def write_temp(directory: str, mode: int, *chunks: bytes) -> str:
    """Write ``chunks`` to a new temporary file of ``directory``, with ``mode``; return its path.

    The file is created exclusively, never through a link, and its mode is set through its
    descriptor, never through a name someone could swap for a link.
    """
    fd, tmp = tempfile.mkstemp(suffix=TEMP, prefix=TEMP_PREFIX, dir=directory)
    try:
        with open(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            os.chmod(fd if os.chmod in os.supports_fd else tmp, mode)
    except BaseException:
        unlink(tmp)
        raise
    return tmp


def str_key(key: str) -> str:
    """``key``, which must be a ``str`` as in every backend (else :func:`key_type_error`)."""
    if not isinstance(key, str):
        raise key_type_error(key)
    return key


def entry_path(directory: str, hash_method: Callable[[bytes], Any], name: str, suffix: str) -> str:
    """The file of the entry stored as ``name`` (prefix and key): its digest in ``directory``.

    The paths of the 1,024 names of up to 256 characters used last are remembered (under
    1 MB): a read of a hot entry hashes nothing and joins no path.
    """
    if len(name) <= _REMEMBERED_NAME:
        try:
            return _remembered_path(directory, hash_method, name, suffix)
        except TypeError:  # an unhashable hash_method: its paths are not remembered
            pass
    return _entry_path(directory, hash_method, name, suffix)


def _entry_path(directory: str, hash_method: Callable[[bytes], Any], name: str, suffix: str) -> str:
    digest = hash_method(name.encode("utf-8", "surrogatepass")).hexdigest()
    return os.path.join(directory, digest + suffix)


_REMEMBERED_NAME = 256
_remembered_path = functools.lru_cache(maxsize=1024)(_entry_path)
