"""Serializers: how values become bytes for the layers that store bytes.

A serializer is any object with ``dumps(value) -> bytes`` and ``loads(data) -> value``
(:class:`Serializer`). The two built-in ones, ``pickle`` (the default) and ``json``, are
registered through the :func:`~stratacache.hookspecs.stratacache_register_serializers` hook
like any plugin's; ``CACHE_SERIALIZER`` picks one by name.

Both wrap every failure in one exception each: :class:`~stratacache.errors.SerializationError`
for a value that cannot be stored, :class:`~stratacache.errors.DeserializationError` for bytes
that cannot be read back. Backends rely on that to turn a corrupted entry into a miss.

A cachelib serializer (a :class:`cachelib.serializers.BaseSerializer`) works too, chosen the
ways cachelib chooses one: as a backend's ``serializer`` class attribute
(``class MyCache(FileSystemCache): serializer = MySerializer()``), assigned to
``backend.serializer``, or passed as ``serializer=``. :class:`CachelibSerializer` adapts it:
cachelib's serializers log and return ``None`` where ours raise.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from cachelib.serializers import BaseSerializer

from stratacache.errors import DeserializationError, SerializationError
from stratacache.hookspecs import hookimpl

__all__ = [
    "CachelibSerializer",
    "JsonSerializer",
    "PickleSerializer",
    "Serializer",
    "SerializerAttribute",
    "as_serializer",
    "unpickling_failed",
]


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
            raise unpickling_failed(exc) from exc

    def __repr__(self) -> str:
        return f"PickleSerializer(protocol={self.protocol})"


def unpickling_failed(exc: Exception) -> DeserializationError:
    """Return the :class:`DeserializationError` for bytes pickle could not read (``exc``)."""
    return DeserializationError(f"cannot unpickle stored bytes: {exc!r}")


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


class CachelibSerializer:
    """A cachelib serializer used by a stratacache backend, with stratacache's errors.

    Args:
        inner: The cachelib serializer (``dumps``/``loads``, and ``dump``/``load`` on a
            file).
        stream: Use ``dump(value, file)`` and ``load(file)``, as cachelib's FileSystemCache
            does; otherwise ``dumps`` and ``loads``, as its other caches do.

    cachelib's serializers log a failure on the root logger and return ``None``: here a
    value ``dumps`` returns no bytes for (or ``dump`` writes none for) raises
    :class:`SerializationError`, and an exception of ``loads`` raises
    :class:`DeserializationError`. A ``None`` that ``loads`` returns for unreadable bytes
    cannot be told from a stored ``None``: it is read as one.
    """

    def __init__(self, inner: Any, *, stream: bool = False) -> None:
        self.inner = inner
        self.stream = stream

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` as bytes through the cachelib serializer."""
        try:
            if self.stream:
                buffer = io.BytesIO()
                self.inner.dump(value, buffer)
                data: Any = buffer.getvalue() or None
            else:
                data = self.inner.dumps(value)
        except Exception as exc:  # a third party's serializer: anything may escape
            raise SerializationError(
                f"{self.inner!r} cannot serialize a value of type {type(value).__qualname__}:"
                f" {exc!r}"
            ) from exc
        if not isinstance(data, bytes | bytearray):
            raise SerializationError(
                f"{self.inner!r} returned {type(data).__qualname__} for a value of type"
                f" {type(value).__qualname__}, not bytes (a cachelib serializer returns None"
                " for a value it cannot serialize)"
            )
        return bytes(data)

    def loads(self, data: bytes) -> Any:
        """Return the value held in ``data`` through the cachelib serializer."""
        try:
            if self.stream:
                return self.inner.load(io.BytesIO(data))
            return self.inner.loads(data)
        except Exception as exc:  # a third party's serializer: anything may escape
            raise DeserializationError(f"{self.inner!r} cannot read stored bytes: {exc!r}") from exc

    def __repr__(self) -> str:
        return f"CachelibSerializer({self.inner!r}, stream={self.stream})"


def as_serializer(serializer: Any, *, stream: bool = False) -> Serializer:
    """Return ``serializer`` as a :class:`Serializer`: a cachelib one adapted, ours as it is.

    Args:
        serializer: A :class:`Serializer`, or a cachelib ``BaseSerializer``.
        stream: For a cachelib serializer: use its file interface (``dump``/``load``).

    Raises:
        TypeError: ``serializer`` has no ``dumps`` and ``loads``.
    """
    if isinstance(serializer, BaseSerializer):
        return CachelibSerializer(serializer, stream=stream)
    if isinstance(serializer, type) or not isinstance(serializer, Serializer):
        raise TypeError(
            f"{serializer!r} is not a serializer: give an object with dumps(value) -> bytes"
            " and loads(data) -> value (stratacache.Serializer), or a cachelib serializer"
            " instance"
        )
    return serializer


class SerializerAttribute:
    """The ``serializer`` of a backend, chosen as cachelib chooses it.

    Reading it on an instance gives what was given (``serializer=``, an assignment, or the
    class's); on the class, the class's own (``type(cache).serializer``). Assigning it
    (cachelib's ``cache.serializer = JSONSerializer()``) takes effect for every later read
    and write. A subclass's ``serializer = MySerializer()`` class attribute becomes the
    class's serializer (:meth:`Backend.__init_subclass__ <stratacache.Backend>`). What the
    backend calls is the adapted one (:func:`as_serializer`), its ``_codec``; a backend that
    binds the codec's methods defines ``_serializer_changed()`` to rebind them.
    """

    def __get__(self, obj: Any, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return getattr(owner, "_declared_serializer", None)
        return obj.__dict__["_serializer"]

    def __set__(self, obj: Any, value: Any) -> None:
        codec = as_serializer(value, stream=type(obj).serializer_stream)
        obj.__dict__["_serializer"] = value
        obj.__dict__["_codec"] = codec
        rebind = getattr(obj, "_serializer_changed", None)
        if rebind is not None:  # a backend that binds the codec's methods (SimpleCache)
            rebind()


@hookimpl
def stratacache_register_serializers(register: Callable[[str, Serializer], None]) -> None:
    """Register the built-in ``pickle`` and ``json`` serializers."""
    register("pickle", PickleSerializer())
    register("json", JsonSerializer())
