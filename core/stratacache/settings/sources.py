"""Where settings come from: the environment, a ``.env`` file, arguments, a mapping."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["KEY_PREFIXES", "Source", "backend_keys_from_files", "read_dotenv"]

Source = Literal["argument", "mapping", "environment", ".env", "default"]
"""Where a setting's value came from, as ``stratacache config`` shows it."""

KEY_PREFIXES = ("CACHE_", "LOCALCACHE_")
"""The prefixes of every configuration key."""


def read_dotenv(env_file: Any) -> dict[str, str | None]:
    """Return the variables of the ``.env`` file ``env_file`` (none if it does not exist)."""
    if not env_file or not os.path.isfile(str(env_file)):
        return {}
    from dotenv import dotenv_values

    return dotenv_values(str(env_file))


def _prefixed(keys: Iterable[str], core: set[str]) -> list[str]:
    return [k for k in keys if k.upper().startswith(KEY_PREFIXES) and k.upper() not in core]


def backend_keys_from_files(core: set[str], env_file: Any) -> dict[str, tuple[Any, Source]]:
    """Return the prefixed keys of the environment and ``.env`` that are not core keys.

    They belong to backends and plugins, which validate them in the assembly step. The
    environment wins over ``.env``, as for core keys.
    """
    found: dict[str, tuple[Any, Source]] = {}
    dotenv = read_dotenv(env_file)
    for key in _prefixed(dotenv, core):
        found[key.upper()] = (dotenv[key], ".env")
    for key in _prefixed(os.environ, core):
        found[key.upper()] = (os.environ[key], "environment")
    return found
