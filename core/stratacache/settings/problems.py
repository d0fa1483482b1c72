"""Problems of the settings: each names the key, the bad value, and what is accepted."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from pydantic import ValidationError

from stratacache.masking import MASK, is_secret_name, mask_url

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

__all__ = ["closest_key", "problems_of", "unknown_key_problems"]

_SECRET_FIELDS = frozenset({"cache_secret_key"})
_NESTED_FIELDS = frozenset({"cache_options", "cache_layers"})  # may hold secrets by name
_EXPLAINED = ("did you mean", "installed backends", "backend:", "in-process", "cache_layers[")


def closest_key(key: str, known: list[str]) -> str | None:
    """Return the known key closest to ``key`` (case-insensitive), if one is close."""
    close = difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_problems(unknown: list[str], known: list[str]) -> list[str]:
    """Describe unknown configuration keys, each with the closest known key."""
    problems = []
    for key in unknown:
        close = closest_key(key, known)
        hint = f"did you mean {close}?" if close else f"known keys: {', '.join(known)}"
        problems.append(f"{key}: unknown configuration key; {hint}")
    return problems


def problems_of(exc: ValidationError, model: type[BaseSettings]) -> list[str]:
    """Turn pydantic's errors on ``model`` into problems that name the key and the fix."""
    fields = model.model_fields
    by_key = {f.alias: name for name, f in fields.items()}
    problems = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        name = by_key.get(name, name)
        field = fields.get(name)
        key = field.alias if field and field.alias else name
        extra = field.json_schema_extra if field else None
        accepts = extra.get("accepts") if isinstance(extra, dict) else None
        value = error.get("input")
        message = str(error["msg"]).removeprefix("Value error, ")
        if name in _SECRET_FIELDS:
            shown = MASK
        elif name == "cache_layers" and message.startswith("CACHE_LAYERS"):
            problems += message.split("\n")  # each names its path: CACHE_LAYERS[2].timeout
            continue
        elif name in _NESTED_FIELDS and isinstance(value, str) and is_secret_name(value):
            shown = MASK  # unparsed text naming a secret (ssl_password...): show none of it
        elif isinstance(value, str):
            shown = repr(mask_url(value))
        else:
            shown = repr(value)
        line = f"{key}={shown}: {message}"
        if accepts and not any(e in message.lower() for e in _EXPLAINED):
            line += f" (expected {accepts})"
        problems.append(line)
    return problems
