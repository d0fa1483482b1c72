"""The files of a FileSystemCache directory: their names, the entry header, the index lines.

An entry file (``<hash>.entry``) is a 16-byte header (magic bytes, format version, expiry as
a float64 UNIX time, 0.0 = never) followed by the payload. A group index
(``<hash>.group``) holds one JSON string, a key, per line. Temporary files
(``stratacache-*.tmp``) are written, then moved into place.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import struct

from stratacache import DeserializationError

__all__ = [
    "COUNT_FILE",
    "ENTRY",
    "HEADER",
    "INDEX",
    "LOCK_FILE",
    "MAGIC",
    "STALE_TEMP_SECONDS",
    "TEMP",
    "TEMP_PREFIX",
    "VERSION",
    "FileKinds",
    "discard",
    "expired",
    "expiry",
    "pack_header",
    "read_index",
    "unlink",
]

HEADER = struct.Struct("<4sB3xd")  # magic, format version, padding, expiry (0.0 = never)
MAGIC = b"STRC"
VERSION = 1
ENTRY, INDEX, TEMP = ".entry", ".group", ".tmp"
TEMP_PREFIX = "stratacache-"
LOCK_FILE = "stratacache.lock"
COUNT_FILE = "stratacache.count"  # its size is the entry count, shared by every process
STALE_TEMP_SECONDS = 60.0  # a temp file this old was left by a killed writer


class FileKinds:
    """Tells the files a cache makes from any other file of its directory.

    Args:
        digits: The length of the hexadecimal digest that names entries and indexes.
    """

    def __init__(self, digits: int) -> None:
        self._own_file = re.compile(rf"[0-9a-f]{{{digits}}}\.(?:entry|group)|{TEMP_PREFIX}\w+\.tmp")

    def __call__(self, name: str) -> str | None:
        """Return the suffix of a file this cache makes, or None for any other file."""
        return os.path.splitext(name)[1] if self._own_file.fullmatch(name) else None


def pack_header(expires: float) -> bytes:
    """Return the header of an entry expiring at ``expires`` (a UNIX time, 0.0 = never)."""
    return HEADER.pack(MAGIC, VERSION, expires)


def expiry(header: bytes) -> float:
    """Return the expiry time held in an entry's header, which must start ``header``."""
    if len(header) < HEADER.size:
        raise DeserializationError(f"truncated header ({len(header)} bytes)")
    magic, version, expires = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise DeserializationError(f"not a stratacache entry (magic bytes {magic!r})")
    if version != VERSION:
        raise DeserializationError(f"unsupported entry format version {version}")
    if not math.isfinite(expires) or expires < 0:
        raise DeserializationError(f"invalid expiry time {expires!r}")
    return float(expires)


def expired(expires: float, now: float) -> bool:
    """Return whether an entry expiring at ``expires`` (0.0 = never) is expired at ``now``."""
    return expires != 0.0 and expires <= now


def discard(path: str, fd: int) -> None:
    """Remove the entry at ``path`` if it is still the file open as ``fd``, not a newer one."""
    with contextlib.suppress(FileNotFoundError):
        there, opened = os.lstat(path), os.fstat(fd)
        if (there.st_dev, there.st_ino) == (opened.st_dev, opened.st_ino):
            os.unlink(path)


def read_index(fd: int) -> list[str]:
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


def unlink(path: str) -> None:
    """Remove the file at ``path``, if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
