"""The slow path's observers: the ``stratacache_slow_path`` hook around misses and computations.

A :class:`~stratacache.route.Route` holds the hook's caller when some plugin implements it
(:func:`observers`), ``None`` otherwise. The read-through calls wrap their slow paths with
:func:`observed_miss`, :func:`observed_run` and :func:`aobserved_run`, and the background
refreshes a miss starts with :func:`observed_refresh` and :func:`aobserved_refresh`; each
costs one attribute check when nobody observes, and a hit in the first tier never reaches
them.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from stratacache.pluginmanager import plugin_manager

if TYPE_CHECKING:
    import pluggy

    from stratacache.route import Route

__all__ = [
    "aobserved_miss",
    "aobserved_refresh",
    "aobserved_run",
    "observed_miss",
    "observed_refresh",
    "observed_run",
    "observers",
]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def observers() -> pluggy.HookCaller | None:
    """Return the ``stratacache_slow_path`` hook if some plugin implements it, else ``None``."""
    caller: pluggy.HookCaller = plugin_manager().hook.stratacache_slow_path
    return caller if caller.get_hookimpls() else None


@contextmanager
def _observed(hook: pluggy.HookCaller, event: str, route: Route, key: str) -> Iterator[None]:
    raised: BaseException | None = None
    with ExitStack() as managers:
        for manager in hook(event=event, function=route.group, key=key):
            managers.enter_context(manager)
        try:
            yield
        except BaseException as exc:
            raised = exc
            raise
    if raised is not None:  # a manager swallowed it: the step's outcome stands
        raise raised


def observed_run(route: Route, key: str, run: Callable[[], R]) -> Callable[[], R]:
    """Return ``run`` (one run of the function), wrapped as a ``"compute"`` step if observed."""
    hook = route.observers
    if hook is None:
        return run

    def observed() -> R:
        with _observed(hook, "compute", route, key):
            return run()

    return observed


def aobserved_run(
    route: Route, key: str, run: Callable[[], Awaitable[R]]
) -> Callable[[], Awaitable[R]]:
    """The awaited twin of :func:`observed_run`."""
    hook = route.observers
    if hook is None:
        return run

    async def observed() -> R:
        with _observed(hook, "compute", route, key):
            return await run()

    return observed


def observed_refresh(route: Route, key: str, job: Callable[[], R]) -> Callable[[], R]:
    """Return ``job`` (a background refresh), wrapped as a ``"refresh"`` step if observed.

    The job runs on a worker thread; it runs in a copy of the context it was started from,
    so its step nests under the call that found the entry stale (an OpenTelemetry span's
    parent is that call's ``"miss"`` span), and its ``"compute"`` step nests under it.
    """
    hook = route.observers
    if hook is None:
        return job
    context = contextvars.copy_context()

    def refresh() -> R:
        with _observed(hook, "refresh", route, key):
            return job()

    return lambda: context.run(refresh)


def aobserved_refresh(
    route: Route, key: str, job: Callable[[], Awaitable[R]]
) -> Callable[[], Awaitable[R]]:
    """The awaited twin of :func:`observed_refresh` (a task copies the context itself)."""
    hook = route.observers
    if hook is None:
        return job

    async def refresh() -> R:
        with _observed(hook, "refresh", route, key):
            return await job()

    return refresh


def observed_miss(
    miss: Callable[Concatenate[S, Route, str, P], R],
) -> Callable[Concatenate[S, Route, str, P], R]:
    """Decorate a call's miss method (``miss(self, route, key, ...)``) as a ``"miss"`` step."""

    @functools.wraps(miss)
    def wrapper(self: S, route: Route, key: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        hook = route.observers
        if hook is None:
            return miss(self, route, key, *args, **kwargs)
        with _observed(hook, "miss", route, key):
            return miss(self, route, key, *args, **kwargs)

    return wrapper


def aobserved_miss(
    miss: Callable[Concatenate[S, Route, str, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, Route, str, P], Coroutine[Any, Any, R]]:
    """The awaited twin of :func:`observed_miss`."""

    @functools.wraps(miss)
    async def wrapper(self: S, route: Route, key: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        hook = route.observers
        if hook is None:
            return await miss(self, route, key, *args, **kwargs)
        with _observed(hook, "miss", route, key):
            return await miss(self, route, key, *args, **kwargs)

    return wrapper
