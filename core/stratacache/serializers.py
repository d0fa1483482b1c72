"""Serializers: how values become bytes for the layers that store bytes.

A serializer is any object with ``dumps(value) -> bytes`` and ``loads(data) -> value``
(:class:`Serializer`). The two built-in ones, ``pickle`` (the default) and ``json``, are
registered through the :func:`~stratacache.hookspecs.stratacache_register_serializers` hook
like any plugin's; ``CACHE_SERIALIZER`` picks one by name.

Both wrap every failure in one exception each: :class:`~stratacache.errors.SerializationError`
for a value that cannot be stored, :class:`~stratacache.errors.DeserializationError` for bytes
that cannot be read back. Backends rely on that to turn a corrupted entry into a miss.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from stratacache.errors import DeserializationError, SerializationError
from stratacache.hookspecs import hookimpl

__all__ = ["JsonSerializer", "PickleSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """What a serializer provides."""

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` as bytes, or raise :class:`SerializationError`."""

    def loads(self, data: bytes) -> Any:
        """Return the value held in ``data``, or raise :class:`DeserializationError`."""


class PickleSerializer:
    """Pickle with the highest protocol: any picklable value, fastest to read back.

    Pickle runs code chosen by whoever wrote the bytes: only use it on a store that only
    your services can write to.
    """

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value``; an unpicklable value raises :class:`SerializationError`."""
        try:
            return pickle.dumps(value, self.protocol)
        except Exception as exc:  # pickle raises TypeError, AttributeError, RecursionError...
            raise SerializationError(
                f"cannot pickle a value of type {type(value).__qualname__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Unpickle ``data``; anything unreadable raises :class:`DeserializationError`."""
        try:
            return pickle.loads(data)
        except Exception as exc:  # truncated data, renamed class, moved module, bad protocol...
            raise DeserializationError(f"cannot unpickle stored bytes: {exc!r}") from exc

    def __repr__(self) -> str:
        return f"PickleSerializer(protocol={self.protocol})"


class JsonSerializer:
    """Compact UTF-8 JSON: readable by services in any language, limited to JSON types.

    Tuples come back as lists and dict keys as strings, as JSON has no other types.
    """

    name = "json"

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as JSON; a non-JSON value raises :class:`SerializationError`."""
        try:
            return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"cannot encode a value of type {type(value).__qualname__} as JSON: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode JSON ``data``; invalid JSON raises :class:`DeserializationError`."""
        try:
            return json.loads(data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise DeserializationError(f"stored bytes are not valid JSON: {exc}") from exc

    def __repr__(self) -> str:
        return "JsonSerializer()"


@hookimpl
def stratacache_register_serializers(register: Callable[[str, Serializer], None]) -> None:
    """Register the built-in ``pickle`` and ``json`` serializers."""
    register("pickle", PickleSerializer())
    register("json", JsonSerializer())
