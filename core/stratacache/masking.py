"""How secrets look wherever settings are shown: masked, URLs with their password hidden."""

from __future__ import annotations

__all__ = ["MASK", "mask_url"]

MASK = "**********"
"""What a secret shows wherever settings are printed."""


def mask_url(value: str) -> str:
    """Return ``value`` with the password of a URL (``scheme://user:password@host``) masked."""
    scheme, sep, rest = value.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at:
        return value
    user, colon, _ = credentials.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}://{masked}@{host}"
