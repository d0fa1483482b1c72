"""Cache keys for decorated functions: stable across processes and restarts.

A key is the function's module and qualified name, in braces, followed by its bound
arguments in parameter order, defaults filled in: ``f(1)``, ``f(x=1)`` and ``f(1, y=2)``
(where ``y`` defaults to 2) give one key, whatever the keyword order. Each argument is
written in a canonical form that depends on its value only, never on ``id()`` or ``hash()``:

* ``None``, booleans, numbers, strings and bytes by their ``repr`` (so ``1``, ``1.0``,
  ``True`` and ``'1'`` are four keys);
* tuples, lists, dicts, sets and frozensets element by element, dicts and sets sorted;
* enum members by class and name, classes by module and qualified name;
* dates, times, decimals, UUIDs and paths by their ``repr``; dataclasses field by field;
* an object with a ``__cache_key__()`` method by what it returns;
* a module-level function by its module and qualified name;
* any other object by its ``repr`` if its class defines one that shows no memory address.

An object with none of these (a lambda, a lock, an instance whose ``repr`` shows its memory
address) has no stable key: calling the function with it raises :class:`TypeError` saying
how to give it one.

Methods: ``self`` and ``cls`` are arguments like the others. A class (``cls``) enters by its
qualified name; an instance (``self``) by its ``__cache_key__()`` or its ``repr``, so two
instances with equal keys share entries. Keys longer than :data:`MAX_KEY_LENGTH` keep the
function's name and the start and end of the arguments, followed by a SHA-256 digest of the
whole key.

The braces make the function's name a Redis Cluster hash tag: every entry of a function, its
lock and its tracking set live in one slot, so the operations that touch them together work
on a cluster.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import pathlib
import re
import types
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_KEY_LENGTH", "KeyBuilder", "encode_value", "function_name"]

MAX_KEY_LENGTH = 200
"""Longest key kept verbatim; longer ones end in a digest of the whole key."""

_REPR_TYPES: tuple[type, ...] = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    decimal.Decimal,
    uuid.UUID,
    pathlib.PurePath,
)


_NAMED_CALLABLES = (types.FunctionType, types.BuiltinFunctionType)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def function_name(func: Callable[..., Any]) -> str:
    """Return ``module.qualname`` of ``func``: the part of its keys that names it."""
    return f"{func.__module__}.{func.__qualname__}"


def _encode_sequence(open_: str, items: Any, close: str) -> str:
    return open_ + ", ".join([encode_value(v) for v in items]) + close


def _encode_tuple(value: tuple[Any, ...]) -> str:
    # The same text as repr() for a tuple of plain values, which the fast path relies on.
    return _encode_sequence("(", value, ",)" if len(value) == 1 else ")")


def _encode_dict(value: dict[Any, Any]) -> str:
    items = sorted(f"{encode_value(k)}: {encode_value(v)}" for k, v in value.items())
    return "{" + ", ".join(items) + "}"


def _encode_set(value: set[Any] | frozenset[Any]) -> str:
    name = "frozenset" if isinstance(value, frozenset) else "set"
    return name + "({" + ", ".join(sorted(encode_value(v) for v in value)) + "})"


_EXACT: dict[type, Callable[[Any], str]] = {
    str: repr,
    int: repr,
    float: repr,
    bool: repr,
    type(None): repr,
    bytes: repr,
    complex: repr,
    tuple: _encode_tuple,
    list: lambda v: _encode_sequence("[", v, "]"),
    dict: _encode_dict,
    set: _encode_set,
    frozenset: _encode_set,
}


def encode_value(value: Any) -> str:  # noqa: PLR0911 (one return per kind of value)
    """Return the canonical text of ``value`` in a key (see the module docstring).

    Raises:
        TypeError: ``value`` has no stable representation.
    """
    encoder = _EXACT.get(type(value))
    if encoder is not None:
        return encoder(value)
    cache_key = getattr(type(value), "__cache_key__", None)
    if cache_key is not None and not isinstance(value, type):
        return f"{_type_name(type(value))}<{cache_key(value)}>"
    if isinstance(value, enum.Enum):
        return f"{_type_name(type(value))}.{value.name}"
    if isinstance(value, type):
        return f"<class {_type_name(value)}>"
    if isinstance(value, _REPR_TYPES):
        return repr(value)
    if dataclasses.is_dataclass(value):
        fields = ",".join(
            f"{f.name}={encode_value(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        return f"{_type_name(type(value))}({fields})"
    for base, encoder in _EXACT.items():  # subclasses of the builtins (str enums, namedtuples)
        if isinstance(value, base):
            return f"{_type_name(type(value))}:{encoder(value)}"
    if isinstance(value, _NAMED_CALLABLES) and "<" not in value.__qualname__:
        return f"<function {value.__module__}.{value.__qualname__}>"
    if getattr(type(value), "__repr__", None) is not object.__repr__:
        text = repr(value)
        if not _ADDRESS.search(text):
            return text
    raise TypeError(
        f"cannot build a stable cache key from {value!r}: objects of class"
        f" {_type_name(type(value))} have no value-based representation (their repr shows"
        " a memory address, which changes between processes). Give the class a"
        " __cache_key__(self) -> str method, or a __repr__ that depends only on its state."
    )


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})
"""Types whose ``repr`` is their canonical form: a call with only these takes the fast path."""


def _bounded(key: str, head: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    args = key[len(head) :]
    return f"{head}{args[:60]}...{args[-30:]}#{digest}"


class KeyBuilder:
    """Builds the keys of one decorated function, with a fast path for plain calls.

    Args:
        func: The function whose calls are keyed.
        key_name: Overrides the ``module.qualname`` part of the key.

    Attributes:
        name: The ``module.qualname`` part of every key.
        build: ``build(args, kwargs) -> key``, the same as calling the builder.
    """

    def __init__(self, func: Callable[..., Any], key_name: str | None = None) -> None:
        self.name = key_name or function_name(func)
        self.build = self._make_builder(inspect.signature(func))

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Return the key of the call ``func(*args, **kwargs)``.

        Raises:
            TypeError: The arguments do not fit the signature, or one has no stable key.
        """
        return self.build(args, kwargs)

    def _make_builder(
        self, signature: inspect.Signature
    ) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
        name = "{" + self.name + "}"
        params = list(signature.parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        nparams = len(params)
        # Defaults of trailing parameters, to complete short positional calls.
        defaults: tuple[Any, ...] = ()
        for p in reversed(params):
            if p.default is inspect.Parameter.empty:
                break
            defaults = (p.default, *defaults)
        fewest = nparams - len(defaults)
        if not all(p.kind in positional for p in params):
            fewest = nparams + 1  # *args, keyword-only or **kwargs: always bind
        plain, limit = _PLAIN, MAX_KEY_LENGTH

        def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if not kwargs and fewest <= len(args) <= nparams:
                if len(args) < nparams:
                    args = args + defaults[len(args) - fewest :]
                for value in args:
                    if type(value) not in plain:
                        break
                else:  # only plain values: repr() is their canonical text
                    count = len(args)
                    # The text of repr(args), spelt out for one and two arguments: tuple's
                    # repr() costs more than the formatting.
                    if count == 1:
                        key = f"{name}({args[0]!r},)"
                    elif count == 2:
                        key = f"{name}({args[0]!r}, {args[1]!r})"
                    else:
                        key = name + repr(args)
                    return key if len(key) <= limit else _bounded(key, name)
                values = args
            else:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                values = tuple(bound.arguments.values())
            return _bounded(name + _encode_tuple(values), name)

        return build
