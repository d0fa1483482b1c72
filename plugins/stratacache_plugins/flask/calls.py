"""What the Flask decorators do around a call, as Flask-Caching does it.

``unless`` and its arguments, generators joined before caching, timeouts read from the
decorated function at call time, and the memoized function that honours them.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, cast

from stratacache import CachedFunction
from stratacache.cachedfunction import CachedMethod

__all__ = [
    "WRITE_GROUP",
    "async_refused",
    "bypass",
    "join_generator",
    "memoized",
    "normalize_timeout",
    "takes_arguments",
]

P = ParamSpec("P")
R = TypeVar("R")

WRITE_GROUP: ContextVar[str | None] = ContextVar("stratacache_flask_write_group", default=None)
"""The memoized function whose result ``Cache.set`` is storing (to track it in its group)."""

_BUILTIN_KINDS = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)


def async_refused(decorator: str, what: str, func: Callable[..., Any]) -> str:
    """The message of the ``TypeError`` for an ``async def`` given to a Flask decorator.

    ``stratacache.cached_for`` caches coroutine functions; the Flask decorators do not yet
    (issue 13), and refuse one when they decorate it, never at request time.
    """
    return (
        f"{decorator} does not support async {what}s yet ({func.__qualname__} is 'async def');"
        f" make the {what} synchronous (a Flask view may be a plain def), or have it await a"
        " function decorated with stratacache.cached_for, which caches async def"
        ' (stratacache docs, page "Flask", section "Async views")'
    )


def takes_arguments(func: Callable[..., Any]) -> bool:
    """Whether ``unless`` is called with the view and its arguments.

    Flask-Caching's rule (``wants_args``): a parameter that is not keyword-only. A callable
    implemented in C (``bool``, ``callable``, ``operator.not_``...) is called with no
    argument, on every Python: 3.13 gave ``bool`` a signature ``(x=False, /)``, and with it
    ``unless=bool`` would become ``bool(view)``, always true, bypassing the cache.
    """
    if _implemented_in_c(func):
        return False
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: call it with none
        return False
    return any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in parameters)


def _implemented_in_c(func: Callable[..., Any]) -> bool:
    if isinstance(func, _BUILTIN_KINDS):
        return True
    if isinstance(func, type):
        return not any(
            inspect.isfunction(vars(klass).get(name))
            for klass in func.__mro__
            for name in ("__init__", "__new__")
        )
    return False


def bypass(
    unless: Callable[..., Any] | None,
    with_args: bool,
    func: Callable[..., Any],
    args: Any,
    kwargs: Any,
) -> bool:
    """Flask-Caching's ``_bypass_cache``: whether ``unless`` returns ``True`` (exactly)."""
    if unless is None:
        return False
    if with_args:
        return unless(func, *args, **kwargs) is True
    return unless() is True


def join_generator(value: Any) -> Any:
    """Flask-Caching's ``join_generator``: a generator becomes the text, bytes or list it yields.

    A generator cannot be stored (nor replayed): Flask-Caching consumes it and caches what it
    yielded, and so does stratacache, so the first call and the hits return the same value.
    """
    if not inspect.isgenerator(value):
        return value
    chunks = list(value)
    if all(isinstance(chunk, str) for chunk in chunks):
        return "".join(cast(list[str], chunks))
    if all(isinstance(chunk, bytes) for chunk in chunks):
        return b"".join(cast(list[bytes], chunks))
    return chunks


def normalize_timeout(timeout: Any, where: str) -> float | None:
    """A ``cache_timeout`` as Flask-Caching reads it: seconds, a timedelta (rounded up), text."""
    if timeout is None:
        return None
    if isinstance(timeout, str):
        timeout = int(timeout)
    if isinstance(timeout, timedelta):
        timeout = math.ceil(timeout.total_seconds())
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{where}: cache_timeout={timeout!r}: give seconds or a timedelta")
    if timeout < 0 or not math.isfinite(timeout):
        raise ValueError(f"{where}: cache_timeout={timeout!r}: give finite seconds >= 0")
    return timeout


@contextmanager
def writing_group(group: str) -> Iterator[None]:
    """Let ``Cache.set`` track the key it stores in a memoized function's group."""
    token = WRITE_GROUP.set(group)
    try:
        yield
    finally:
        WRITE_GROUP.reset(token)


def memoized(
    inner: CachedFunction[P, R],
    timeout: Any,
    owner: Any,
    overridden: bool,
    unless: Callable[..., Any] | None,
) -> CachedFunction[P, R]:
    """Flask-Caching's memoized function around a ``cached_for`` one.

    Args:
        inner: The ``cached_for`` function (its engine serves the calls).
        timeout: The decorator's timeout, ``cache_timeout`` until reassigned.
        owner: The ``Cache``: when its class overrides ``get`` or ``set`` (``overridden``),
            or they are patched on it, the calls go through them.
        overridden: Whether the class of ``owner`` overrides ``get`` or ``set``.
        unless: Bypass the cache when it returns ``True``.

    ``f.cache_timeout`` is read at every call (as Flask-Caching does); ``f.make_cache_key``
    returns the key of a call; ``f.delete_memoized(*args)`` is
    ``cache.delete_memoized(f, *args)``.
    """
    call = cast(Any, inner.invalidate).__self__  # the _CachedCall: its timeout and route
    func = call.func
    call.func = functools.wraps(func)(lambda *a, **k: join_generator(func(*a, **k)))
    applied = [timeout]
    with_args = unless is not None and takes_arguments(unless)
    outer: Any = None  # what the decorator returns: its attributes are read at call time
    patched = owner.__dict__

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if outer.cache_timeout is not applied[0]:
            _retime(call, outer.cache_timeout, applied)
        if unless is not None and bypass(unless, with_args, func, args, kwargs):
            return func(*args, **kwargs)
        if not overridden and "get" not in patched and "set" not in patched:
            return inner(*args, **kwargs)
        key = call.cache_key(*args, **kwargs)
        value = owner.get(key)
        if value is not None:  # through get/set, None is a miss (Flask-Caching's cache_none)
            return value
        value = join_generator(func(*args, **kwargs))
        with writing_group(call.group):
            owner.set(key, value, timeout=outer.cache_timeout)
        return value

    def make_cache_key(*args: Any, **kwargs: Any) -> str:
        # Flask-Caching's takes the function first (f.make_cache_key(f.uncached, *args)).
        if args and (args[0] is func or args[0] is outer):
            args = args[1:]
        return cast(str, call.cache_key(*args, **kwargs))

    outer = CachedMethod(wrapper, call) if isinstance(inner, CachedMethod) else wrapper
    functools.update_wrapper(outer, func)
    for name in ("uncached", "invalidate", "clear_cache", "cache_key"):
        setattr(outer, name, getattr(inner, name))
    outer.cache_timeout = timeout
    outer.make_cache_key = make_cache_key

    def delete_memoized(*args: Any, **kwargs: Any) -> None:
        # Flask-Caching's f.delete_memoized(*args): cache.delete_memoized(f, *args).
        owner.delete_memoized(outer, *args, **kwargs)

    outer.delete_memoized = delete_memoized
    return cast(CachedFunction[P, R], outer)


def _retime(call: Any, timeout: Any, applied: list[Any]) -> None:
    seconds = normalize_timeout(timeout, f"memoize({call.group})")
    call.timeout = None if seconds is None else math.ceil(seconds)
    call.reroute()
    applied[0] = timeout
