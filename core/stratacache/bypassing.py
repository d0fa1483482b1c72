"""``stratacache.bypass()``: run code with every decorated function uncached, for its tests.

Inside ``with stratacache.bypass():`` a call of a decorated function reads no tier and
writes none: the function runs every time. The scope is a :class:`contextvars.ContextVar`,
so it is the current thread's, or the current asyncio task's (a task started inside the
block inherits it, as tasks inherit context variables); other threads and tasks keep
their cache.

It costs nothing on the hot path: entering the block sends every decorated function to its
slow path (its route is dropped), where :func:`route_or_bypass` looks at the context
variable. While any block is open, in any thread, functions outside it take that slow path
too (a route build per call), which is for tests, not production.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from stratacache.computation import NO_VALUE
from stratacache.stats import LayerStats

__all__ = ["BYPASSED", "Bypassable", "active", "bypass", "register", "route_or_bypass"]

_active: contextvars.ContextVar[bool] = contextvars.ContextVar("stratacache_bypass", default=False)
_lock = threading.Lock()
_open = 0  # blocks open, in every context
_calls: weakref.WeakSet[Bypassable] = weakref.WeakSet()


class Bypassable(Protocol):
    """A decorated function's state (:class:`~stratacache.call.CachedCall`), as seen here."""

    route: Any


class _Cache:
    in_process = True


class _Tier:
    cache = _Cache()
    name = "(bypassed)"

    def __init__(self) -> None:
        self.stats = LayerStats()


class _Bypassed:
    """The route of a call inside :func:`bypass`: its first tier misses, and nothing follows.

    The hot path treats it like any route: its state is never the stack's, so the next
    call asks again; its lookup misses, and the slow path sees it is :data:`BYPASSED`.
    """

    state = object()
    counting = False
    observers = None
    first = _Tier()
    tiers = (first,)

    @staticmethod
    def lookup(key: str) -> Any:
        return NO_VALUE


BYPASSED: Any = _Bypassed()
"""The route a call gets inside :func:`bypass`."""


def register(call: Bypassable) -> None:
    """Remember a decorated function, so opening a block drops its route."""
    with _lock:
        _calls.add(call)
        if _open:
            call.route = BYPASSED


@contextlib.contextmanager
def bypass() -> Iterator[None]:
    """Run the block with every decorated function uncached (see the module docstring).

    Nested blocks, and blocks in several threads or tasks at once, are fine.
    """
    global _open
    token = _active.set(True)
    with _lock:
        _open += 1
        for call in list(_calls):
            call.route = BYPASSED  # never the stack's state: the next call reroutes
    try:
        yield
    finally:
        with _lock:
            _open -= 1
        _active.reset(token)


def active() -> bool:
    """Whether the current thread or task runs inside a :func:`bypass` block."""
    return bool(_open) and _active.get()


def route_or_bypass(
    build: Callable[[], Any], install: Callable[[Any], None], *, honoured: bool = True
) -> Any:
    """Return the route of a call: :data:`BYPASSED` inside a block, else ``build()``.

    The route built is installed (so the next call takes the hot path) only while no block
    is open anywhere; a block opening meanwhile drops it again under the same lock.
    ``honoured=False`` (management methods: ``invalidate``, ``clear_cache``) always builds.
    """
    if honoured and active():
        return BYPASSED
    route = build()
    with _lock:
        if not _open:
            install(route)
    return route
