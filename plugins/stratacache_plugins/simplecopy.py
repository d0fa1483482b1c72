"""How SimpleCache keeps a value: by reference, as a flat copy, or serialized.

Part of :class:`~stratacache_plugins.simple.SimpleCache`, whose contract is that a caller
mutating a returned value never changes the cached one. A pickle round trip keeps it for
any value, but unpickling a small dict on every hit costs more than the rest of the hit.
So the form is chosen once, when the value is written, and stored beside it; a hit only
applies it:

* a value of an immutable type (``int``, ``float``, ``complex``, ``str``, ``bytes``,
  ``bool``, ``None``, and tuples and frozensets of those, nested) is kept by reference and
  returned as it is: nobody can mutate it;
* a ``dict``, ``list`` or ``set`` whose keys and elements are all of those types is kept
  as a private copy, and each hit returns a fresh shallow copy of it (``dict.copy``...):
  mutating the copy cannot reach the cached one, and its elements cannot be mutated;
* anything else goes through the serializer (pickle), as before.

Types are matched exactly (``type(v) is dict``, never ``isinstance``): a subclass may carry
state or behaviour a shallow copy would lose, so it is pickled. The forms apply only with
the default :class:`~stratacache.serializers.PickleSerializer`, whose round trip they
equal (same value, same type); a serializer of the user's own (JSON, say, which turns
tuples into lists) keeps seeing every value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from stratacache import Serializer
from stratacache.serializers import PickleSerializer

__all__ = ["Form", "Restore", "form_of", "immutable", "stored_form"]

Restore = Callable[[Any], Any] | None
"""How a hit turns stored data into the value: ``None`` returns the data itself."""

Form = Callable[[Any], tuple[Any, Restore]]
"""What a write stores for a value: ``(data, restore)``."""

_SCALARS: frozenset[type] = frozenset({int, float, complex, str, bytes, bool, type(None)})
_NESTING: frozenset[type] = _SCALARS | {tuple, frozenset}
_MAX_DEPTH = 32
"""Deeper tuples are pickled (which copies them): the check stays bounded."""

_COPIES: dict[type, Callable[[Any], Any]] = {dict: dict.copy, list: list.copy, set: set.copy}
"""The flat containers, and the copy a hit returns of each."""


def immutable(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is of an immutable type all the way down (see the module docstring)."""
    cls = type(value)
    if cls in _SCALARS:
        return True
    if cls is not tuple and cls is not frozenset:
        return False
    return depth < _MAX_DEPTH and _all_immutable(value, depth + 1)


def _all_immutable(items: Iterable[Any], depth: int) -> bool:
    # The types of all items at once, in C: a big flat container costs no Python loop.
    kinds = set(map(type, items))
    if kinds <= _SCALARS:
        return True
    return kinds <= _NESTING and all(immutable(v, depth) for v in items)


def stored_form(
    value: Any, dumps: Callable[[Any], Any], loads: Callable[[Any], Any]
) -> tuple[Any, Restore]:
    """Return ``(data, restore)``: what SimpleCache stores for ``value``, and how to return it.

    Args:
        value: The value being written.
        dumps: The serializer's ``dumps``, for every other value.
        loads: The serializer's ``loads``: the ``restore`` of serialized data.

    Raises:
        SerializationError: ``dumps`` cannot serialize ``value``.
    """
    cls = type(value)
    if cls in _SCALARS:
        return value, None
    if cls is tuple or cls is frozenset:
        if _all_immutable(value, 1):
            return value, None
    elif cls is dict:
        if _all_immutable(value, 0) and _all_immutable(value.values(), 0):
            return value.copy(), dict.copy
    elif cls in _COPIES and _all_immutable(value, 0):
        restore = _COPIES[cls]
        return restore(value), restore
    return dumps(value), loads


def form_of(codec: Serializer | None) -> Form:
    """Return how a cache with this serializer stores values (``None``: it does not serialize).

    Without a serializer, every value is kept by reference; with pickle, the forms of
    :func:`stored_form`; with any other serializer, every value is serialized.
    """
    if codec is None:
        return _by_reference
    if type(codec) is PickleSerializer:
        return functools.partial(stored_form, dumps=codec.dumps, loads=codec.loads)
    return functools.partial(_serialized, codec.dumps, codec.loads)


def _by_reference(value: Any) -> tuple[Any, Restore]:
    return value, None


def _serialized(
    dumps: Callable[[Any], Any], loads: Callable[[Any], Any], value: Any
) -> tuple[Any, Restore]:
    return dumps(value), loads
