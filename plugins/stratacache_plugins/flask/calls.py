"""What the Flask decorators do around a call, as Flask-Caching does it.

``unless`` and its arguments, generators joined before caching, timeouts read from the
decorated function at call time, and the function group ``Cache.set`` tracks a write in.
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, cast

__all__ = [
    "WRITE_GROUP",
    "bypass",
    "join_generator",
    "normalize_timeout",
    "takes_arguments",
    "writing_group",
]

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
def writing_group(group: str | None) -> Iterator[None]:
    """Let ``Cache.set`` track the key it stores in a memoized function's group."""
    token = WRITE_GROUP.set(group)
    try:
        yield
    finally:
        WRITE_GROUP.reset(token)
