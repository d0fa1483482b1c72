"""How the Redis backends name what they store: entries, tracking sets and locks."""

from __future__ import annotations

import re

__all__ = ["CLEAR_BATCH", "LOCK_PREFIX", "TRACKING_SUFFIX", "check_prefix", "escape_glob"]

TRACKING_SUFFIX = ":__tracked__"
"""Ends the name of a function's tracking set: ``<prefix>{module.qualname}:__tracked__``."""

LOCK_PREFIX = "__lock__:"
"""Starts (after the key prefix) the name of an ``at_most_once`` lock."""

CLEAR_BATCH = 500
"""Keys deleted per round trip by ``clear`` and ``clear_tracked``, and SCAN's count."""

_BALANCED_BRACES = re.compile(r"[^{}]*(?:\{[^{}]*\}[^{}]*)*")


def check_prefix(prefix: str) -> None:
    """Raise :class:`ValueError` if ``prefix`` has an unmatched brace (a broken hash tag)."""
    if not _BALANCED_BRACES.fullmatch(prefix):
        raise ValueError(
            f"key_prefix {prefix!r} has an unmatched brace; braces in a Redis key mark its"
            " cluster hash tag, so use none, or a whole tag such as '{myapp}_'"
        )


def escape_glob(text: str) -> str:
    """Return ``text`` with the glob characters of a ``SCAN MATCH`` pattern escaped."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
