"""Signed payloads: an HMAC on every stored entry, so planted bytes are never deserialized.

Pickle from a store that someone else can write to is code execution for them. With
``CACHE_SECRET_KEY`` set, the backends that keep bytes outside the process (Redis, the file
system) store every entry as::

    b"SCS1" | HMAC-SHA256(secret, len(key) | key | data) | data

and verify the 32-byte tag before the serializer ever sees ``data``. The key under the tag
is the full name the entry is stored under (the backend's prefix included), so a signed
entry copied to another key, or under another application's prefix, does not verify. Several secrets
may be given for rotation: the first signs, any verifies.

A payload whose tag is missing or wrong raises :class:`SignatureError`, a
:class:`~stratacache.errors.DeserializationError`: backends that turn unreadable entries into
misses do the same with it (and delete the entry), those that raise, raise it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Final

from stratacache.errors import DeserializationError

__all__ = ["MIN_SECRET_LENGTH", "SignatureError", "Signer"]

MAGIC: Final = b"SCS1"
"""The first bytes of a signed payload (format version 1)."""

_TAG_SIZE: Final = hashlib.sha256().digest_size
_HEADER_SIZE: Final = len(MAGIC) + _TAG_SIZE

MIN_SECRET_LENGTH: Final = 16
"""The shortest secret accepted, in bytes: shorter ones are guessable."""


class SignatureError(DeserializationError):
    """A stored payload is unsigned or its signature matches none of the secret keys."""


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


class Signer:
    """Signs and verifies payloads with HMAC-SHA256 (see the module docstring).

    Args:
        secrets: One or more secrets, newest first: the first signs, every one verifies.

    Raises:
        ValueError: No secret, or one shorter than :data:`MIN_SECRET_LENGTH` bytes.
    """

    __slots__ = ("_macs",)

    def __init__(self, secrets: Iterable[str | bytes]) -> None:
        keys = [_secret_bytes(s) for s in secrets]
        if not keys:
            raise ValueError("a Signer needs at least one secret key")
        for index, key in enumerate(keys):
            if len(key) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"secret key #{index + 1} is {len(key)} bytes long; use at least"
                    f" {MIN_SECRET_LENGTH} random bytes, e.g. the output of"
                    " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        # One keyed HMAC per secret, copied per payload: the key schedule is done once.
        self._macs = [hmac.new(key, digestmod=hashlib.sha256) for key in keys]

    @staticmethod
    def _tag(mac: hmac.HMAC, key: str, data: bytes | memoryview) -> bytes:
        encoded = key.encode("utf-8", "surrogatepass")
        h = mac.copy()
        h.update(len(encoded).to_bytes(4, "big"))
        h.update(encoded)
        h.update(data)
        return h.digest()

    def sign(self, key: str, data: bytes) -> bytes:
        """Return ``data`` with the header and tag for ``key`` (signed with the first secret)."""
        return MAGIC + self._tag(self._macs[0], key, data) + data

    def verify(self, key: str, payload: bytes) -> bytes:
        """Return the data inside ``payload`` once its tag for ``key`` checks out.

        Raises:
            SignatureError: The payload is not signed, or no secret key produced its tag.
        """
        if payload[: len(MAGIC)] != MAGIC or len(payload) < _HEADER_SIZE:
            raise SignatureError(
                "the stored payload is not signed; with CACHE_SECRET_KEY set, unsigned"
                " entries are never deserialized (it was written without the key, or planted)"
            )
        view = memoryview(payload)
        tag, data = bytes(view[len(MAGIC) : _HEADER_SIZE]), view[_HEADER_SIZE:]
        for mac in self._macs:
            if hmac.compare_digest(self._tag(mac, key, data), tag):
                return data.tobytes()
        raise SignatureError(
            "the stored payload's signature matches none of the CACHE_SECRET_KEY keys (it was"
            " signed with another key, written under another key name, or tampered with)"
        )

    def __repr__(self) -> str:
        return f"Signer(<{len(self._macs)} secret key(s)>)"
