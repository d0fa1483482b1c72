"""How secrets look wherever settings are shown: masked, URLs with their passwords hidden.

A setting or option is a secret when its name says so (it contains ``password``, ``secret``
or ``token``: ``CACHE_REDIS_PASSWORD``, ``ssl_password``, ``auth_token``) or its model types
it :class:`~pydantic.SecretStr`. A URL hides its password (``scheme://user:password@host``)
and the value of every query parameter so named (``?password=...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "SECRET_WORDS", "is_secret_name", "mask_options", "mask_url"]

MASK = "**********"
"""What a secret shows wherever settings are printed."""

SECRET_WORDS = ("password", "secret", "token")
"""A name containing one of these (in any case) holds a secret."""

# A query parameter whose name holds a secret word, and its value up to the next parameter.
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&;#?]*(?:" + "|".join(SECRET_WORDS) + r")[^=&;#?]*=)[^&;#]*",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Return whether a setting or option called ``name`` holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_url(value: str) -> str:
    """Return ``value`` with the secrets of a URL masked.

    Masked: the password of ``scheme://user:password@host`` (everything before the last
    ``@`` when there is no user name), and the value of each query parameter whose name
    holds a secret (``?password=...``, ``&auth_token=...``). A string that is not a URL
    is returned as it is.
    """
    scheme, sep, rest = value.partition("://")
    if not sep:
        return value
    # The query first: a secret there may hold an "@" that is not the credentials' end.
    rest = _SECRET_QUERY.sub(lambda m: m["name"] + MASK, rest)
    credentials, at, host = rest.rpartition("@")
    if not at:
        return f"{scheme}://{rest}"
    user, colon, _ = credentials.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}://{masked}@{host}"


def mask_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``options`` (by name) as they may be shown: secrets masked, URLs' too."""
    shown: dict[str, Any] = {}
    for name, value in options.items():
        if value and is_secret_name(str(name)):
            shown[name] = MASK
        elif isinstance(value, str):
            shown[name] = mask_url(value)
        elif isinstance(value, Mapping):
            shown[name] = mask_options(value)
        else:
            shown[name] = value
    return shown
