"""Cache keys for decorated functions: stable across processes and restarts.

A key is the function's module and qualified name, in braces, followed by its bound
arguments in parameter order, defaults filled in: ``f(1)``, ``f(x=1)`` and ``f(1, y=2)``
(where ``y`` defaults to 2) give one key, whatever the keyword order. Each argument is
written in a canonical form that depends on its value only, never on ``id()`` or ``hash()``:

* ``None``, booleans, numbers, strings and bytes by their ``repr`` (so ``1``, ``1.0``,
  ``True`` and ``'1'`` are four keys, and so are ``0.0`` and ``-0.0``; every NaN is one key);
* tuples, lists, dicts, sets and frozensets element by element, dicts and sets sorted;
* enum members by class and name, classes by module and qualified name;
* dates, times, decimals, UUIDs and paths by their ``repr``; dataclasses field by field;
* an object whose class has a ``__cache_key__()`` method by its class and what it returns,
  encoded like an argument (a string quoted and escaped, never inserted raw); failing that,
  Flask-Caching's ``__caching_id__`` (a method called ``obj.__caching_id__(obj)`` as
  Flask-Caching does, or without arguments, or a plain attribute) the same way;
* a numpy array by dtype, shape and a SHA-256 digest of its bytes (an array of Python
  objects element by element); a numpy scalar by dtype and bytes (numpy is never imported
  for this);
* a module-level function by its module and qualified name; a ``functools.partial`` by its
  function, arguments and keywords;
* any other object by its class and its ``repr`` (quoted), if its class defines a
  ``repr`` that shows no memory address and elides nothing (no ``...``).

So the encoding is injective: two argument lists get one key only if they are equal and of
the same types, element by element (with the exceptions above: NaNs share one key, and an
object is its declared key or its ``repr``, so two instances declaring one key share
entries). Refused, with a :class:`TypeError` saying how to give a key: an object with none
of the forms above (a lambda, a lock, an instance whose ``repr`` shows its memory address),
one whose ``repr`` looks truncated (``...``), pandas objects (their ``repr`` truncates, and
digesting a frame on every call costs as much as the call may), and containers nested more
than :data:`MAX_DEPTH` levels deep (or containing themselves).

The function's own name: a lambda cannot be decorated (every lambda of a scope has the
same name, so two would share entries: define it with ``def``). A decorated
``functools.partial`` is keyed as the call it makes, under its function's name: ``p(3)``
with ``p = partial(power, exp=2)`` has the key of ``power(3, exp=2)``.

Methods: ``self`` and ``cls`` are arguments like the others. A class (``cls``) enters by its
qualified name; an instance (``self``) by its ``__cache_key__()``, ``__caching_id__`` or
``repr``, so two instances with equal keys share entries. Keys longer than
:data:`MAX_KEY_LENGTH` keep the function's name and the start and end of the arguments,
followed by a SHA-256 digest of the whole key.

The braces make the function's name a Redis Cluster hash tag: every entry of a function, its
lock and its tracking set live in one slot, so the operations that touch them together work
on a cluster.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import inspect
import pathlib
import re
import types
import uuid
from collections.abc import Callable
from typing import Any

from stratacache.keyforms import array_form, declared_key, type_name
from stratacache.keyoptions import KeyOptions
from stratacache.keyshapes import specialised

__all__ = ["MAX_DEPTH", "MAX_KEY_LENGTH", "KeyBuilder", "encode_value", "function_name"]

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
_TRUNCATED = ("...", "\u2026")  # what a repr that elides part of its object shows

MAX_DEPTH = 100
"""Deepest nesting of containers an argument may have; deeper ones raise :class:`TypeError`."""

_Encoder = Callable[[Any, int], str]


def function_name(func: Callable[..., Any]) -> str:
    """Return ``module.qualname`` of ``func``: the part of its keys that names it.

    Raises:
        TypeError: ``func`` has no module-level name to key it by.
    """
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str):
        raise TypeError(
            f"cannot name {func!r} in cache keys: it has no __module__ and __qualname__;"
            " decorate a def (a function defined with def), or a functools.partial of one"
        )
    return f"{module}.{qualname}"


def _encode_sequence(open_: str, items: Any, close: str, depth: int) -> str:
    if depth >= MAX_DEPTH:
        _too_deep()
    return open_ + ", ".join([_encode(v, depth + 1) for v in items]) + close


def _encode_tuple(value: tuple[Any, ...], depth: int = 0) -> str:
    # The same text as repr() for a tuple of plain values, which the fast path relies on.
    return _encode_sequence("(", value, ",)" if len(value) == 1 else ")", depth)


def _encode_dict(value: dict[Any, Any], depth: int) -> str:
    if depth >= MAX_DEPTH:
        _too_deep()
    depth += 1
    items = sorted(f"{_encode(k, depth)}: {_encode(v, depth)}" for k, v in value.items())
    return "{" + ", ".join(items) + "}"


def _encode_set(value: set[Any] | frozenset[Any], depth: int) -> str:
    if depth >= MAX_DEPTH:
        _too_deep()
    name = "frozenset" if isinstance(value, frozenset) else "set"
    return name + "({" + ", ".join(sorted(_encode(v, depth + 1) for v in value)) + "})"


def _too_deep() -> None:
    raise TypeError(
        f"cannot build a cache key from an argument nested more than {MAX_DEPTH} levels deep"
        " (the depth limit of stratacache.keys.MAX_DEPTH, which also catches a container"
        " that contains itself); give the argument's class a __cache_key__(self) -> str"
        " method, or pass a flatter value"
    )


def _encode_repr(value: Any, depth: int) -> str:
    return repr(value)


_EXACT: dict[type, _Encoder] = {
    str: _encode_repr,
    int: _encode_repr,
    float: _encode_repr,
    bool: _encode_repr,
    type(None): _encode_repr,
    bytes: _encode_repr,
    complex: _encode_repr,
    tuple: _encode_tuple,
    list: lambda v, depth: _encode_sequence("[", v, "]", depth),
    dict: _encode_dict,
    set: _encode_set,
    frozenset: _encode_set,
}


def encode_value(value: Any) -> str:
    """Return the canonical text of ``value`` in a key (see the module docstring).

    Raises:
        TypeError: ``value`` has no stable representation, or is nested too deep.
    """
    return _encode(value, 0)


def _encode(value: Any, depth: int) -> str:  # noqa: PLR0911 (one return per kind)
    cls = type(value)
    encoder = _EXACT.get(cls)
    if encoder is not None:
        return encoder(value, depth)
    if depth >= MAX_DEPTH:
        _too_deep()
    ident = declared_key(value, cls)
    if ident is not None:  # __cache_key__ / __caching_id__: the text, quoted (never raw)
        return f"{type_name(cls)}<{_encode(ident, depth + 1)}>"
    if isinstance(value, enum.Enum):
        return f"{type_name(cls)}.{value.name}"
    if isinstance(value, type):
        return f"<class {type_name(value)}>"
    if isinstance(value, _REPR_TYPES):
        return repr(value)
    if dataclasses.is_dataclass(value):
        fields = ",".join(
            f"{f.name}={_encode(getattr(value, f.name), depth + 1)}"
            for f in dataclasses.fields(value)
        )
        return f"{type_name(cls)}({fields})"
    if cls.__module__.startswith(("numpy", "pandas")) and (
        form := array_form(value, cls, lambda items: _encode(items, depth + 1))
    ):
        return form
    for base, exact in _EXACT.items():  # subclasses of the builtins (str enums, namedtuples)
        if isinstance(value, base):
            return f"{type_name(cls)}:{exact(value, depth)}"
    if isinstance(value, _NAMED_CALLABLES) and "<" not in value.__qualname__:
        return f"<function {value.__module__}.{value.__qualname__}>"
    if isinstance(value, functools.partial):
        func = _encode(value.func, depth + 1)
        args = _encode_tuple(value.args, depth + 1)
        return f"functools.partial({func}, {args}, {_encode_dict(value.keywords, depth + 1)})"
    return _encode_by_repr(value, cls)


def _encode_by_repr(value: Any, cls: type) -> str:
    if getattr(cls, "__repr__", None) is not object.__repr__:
        text = repr(value)
        if any(mark in text for mark in _TRUNCATED):
            raise TypeError(
                f"cannot build a cache key from a {type_name(cls)} whose repr looks"
                f" truncated ({_clip(text)}): a repr that elides part of its object would"
                " give two different objects one key. Give the class a"
                " __cache_key__(self) -> str method returning all of its state (or a"
                " digest of it), or pass that state instead of the object."
            )
        if not _ADDRESS.search(text):
            # Quoted, so no repr can spell another argument list.
            return f"{type_name(cls)}<{text!r}>"
    raise TypeError(
        f"cannot build a stable cache key from {_clip(repr(value))}: objects of class"
        f" {type_name(cls)} have no value-based representation (their repr shows"
        " a memory address, which changes between processes). Give the class a"
        " __cache_key__(self) -> str method, or a __repr__ that depends only on its state."
    )


def _clip(text: str) -> str:
    return text if len(text) <= 80 else text[:60] + " [...] " + text[-15:]


_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})
"""Types whose ``repr`` is their canonical form: a call with only these takes the fast path."""


def _bounded(key: str, head: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    args = key[len(head) :]
    return f"{head}{args[:60]}...{args[-30:]}#{digest}"


def _unkeyed_instance(
    name: str, signature: inspect.Signature, values: tuple[Any, ...]
) -> TypeError | None:
    """The error of a method whose instance has no key, saying how to give one, or None."""
    if not values or next(iter(signature.parameters), None) != "self":
        return None
    instance = values[0]
    try:
        encode_value(instance)
    except TypeError:
        cls = type(instance)
        return TypeError(
            f"cannot build a cache key for the method {name}: its instance, a"
            f" {type_name(cls)}, has no stable key (its class keeps object's default repr,"
            " which shows a memory address). Give the decorator key_self=lambda self:"
            f" self.id (any stable identity), or give {cls.__qualname__} a"
            " __cache_key__(self) -> str method (or Flask-Caching's __caching_id__), or"
            " ignore=['self'] if every instance may share the entries"
        )
    return None


class KeyBuilder:
    """Builds the keys of one decorated function, with a fast path for plain calls.

    Args:
        func: The function whose calls are keyed.
        key_name: Overrides the ``module.qualname`` part of the key.
        options: ``cached_for``'s key options (``key=``, ``ignore=``, ``version=``,
            ``key_self=``), which replace the argument part (see
            :mod:`stratacache.keyoptions`).

    Attributes:
        name: The ``module.qualname`` part of every key.
        build: ``build(args, kwargs) -> key``, the same as calling the builder.
    """

    name: str
    build: Callable[[tuple[Any, ...], dict[str, Any]], str]

    def __init__(
        self,
        func: Callable[..., Any],
        key_name: str | None = None,
        options: KeyOptions | None = None,
    ) -> None:
        part = (
            options.argument_part(inspect.signature(func), encode_value)
            if options is not None
            else None
        )
        if part is not None:
            self.name = key_name or function_name(getattr(func, "func", func))
            head = "{" + self.name + "}"
            self.build = lambda args, kwargs: _bounded(head + part(args, kwargs), head)
            return
        if isinstance(func, functools.partial):
            # The key of p(*a, **k) is the key of the wrapped call it makes.
            inner = KeyBuilder(func.func, key_name)
            bound, keywords = func.args, func.keywords
            encode_value((bound, keywords))  # refuse now an argument without a key
            inner_build = inner.build

            def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
                return inner_build(bound + args, {**keywords, **kwargs})

            self.name, self.build = inner.name, build
            return
        self.name = key_name or function_name(func)
        if key_name is None and "<lambda>" in self.name:
            raise TypeError(
                f"cannot cache a lambda ({self.name}): every lambda of one scope has that"
                " name, so two of them would share their entries. Define it with def and a"
                " name of its own: def square(x): return x * x"
            )
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
        exact = fewest == nparams and nparams in (1, 2)

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
            try:
                return _bounded(name + _encode_tuple(values), name)
            except TypeError as exc:  # a method's instance: say how to give it a key
                # (from the names build already holds: another free variable costs every hit)
                unkeyed = _unkeyed_instance(name[1:-1], signature, values)
                if unkeyed is not None:
                    raise unkeyed from exc
                raise

        if exact:  # one or two positional parameters: the common shapes, spelt out
            return specialised(name, nparams, build, plain, limit)
        return build
