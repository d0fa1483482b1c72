"""The options model of FileSystemCache: its directory, its threshold, its files' mode.

Plain pydantic on :mod:`stratacache.options`; it imports no backend.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import field_validator

from stratacache.options import option
from stratacache_plugins._options import PluginOptions

__all__ = ["FileSystemCacheOptions"]


class FileSystemCacheOptions(PluginOptions):
    """The options of FileSystemCache."""

    cache_dir: str | None = option(
        None,
        key="DIR",
        accepts="a directory path (~ is the home directory)",
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
        if value is not None and value.startswith("~"):
            # A shell expands ~ only unquoted at the start of a word: in a .env file, a
            # quoted value or a container's environment it arrives as is, and a directory
            # literally named "~" is never what was meant. So ~ means the home directory.
            expanded = os.path.expanduser(value)
            if expanded.startswith("~"):
                raise ValueError(
                    "starts with ~ but that names no home directory here (HOME unset, or"
                    " no such user); give an absolute path"
                )
            value = expanded
        if value is not None and os.path.exists(value) and not os.path.isdir(value):
            raise ValueError("not a directory; give a directory path (created if missing)")
        return value
