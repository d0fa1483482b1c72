"""Settings that hold a list: written as a JSON list, or in a shorter form of their own."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from stratacache.unpickling import AllowList

__all__ = ["parse_pickle_allow", "string_list"]


def string_list(text: str, short: Callable[[str], list[str]]) -> Any:
    """Return the JSON list ``text`` holds when it starts with ``[``, else ``short(text)``.

    Raises:
        ValueError: ``text`` starts with ``[`` but is not JSON.
    """
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"starts with '[' but is not a JSON list ({exc})") from None
    return short(text)


def _comma_separated(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_pickle_allow(value: Any) -> tuple[str, ...] | None:
    """Validate ``CACHE_PICKLE_ALLOW``: ``None`` (unset), a list, JSON, or comma-separated.

    Raises:
        ValueError: Not a list of dotted names; the message names the entry at fault.
    """
    if value is None:  # unset: no restriction
        return None
    if isinstance(value, str):
        value = string_list(value, _comma_separated)
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of module names, or a comma-separated string")
    return AllowList(value).allowed
