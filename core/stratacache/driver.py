"""Running the engine's rules: each rule yields the tier operations it needs, a driver runs them.

The engine (:mod:`stratacache.engine`) writes each rule once, as a generator that yields
:data:`Step` values and receives their results: ``(tier, operation, arguments)`` for an
operation of a :class:`~stratacache.Tier` (``"lookup_entry"``, ``"store"``,
``"commit"``...), or ``(None, RUN, ())`` to run the function being cached. A rule holds no
I/O of its own, so the same rule serves every caller: :func:`drive` runs it with plain calls
for synchronous code, and :func:`adrive` for ``async def`` code: there, an operation on an
in-process tier is a plain call (no ``await``, no thread), one on a tier whose backend
serves async code natively (``api`` ``"both"`` or ``"async"``: the Redis backends, on
``redis.asyncio``) is awaited, and one on any other tier that talks to a store runs in a
worker thread (:func:`asyncio.to_thread`), so the event loop never blocks on it. An
exception an operation raises is thrown into the rule at the ``yield``, so the rule's
``try``/``finally`` (releasing a lock, skipping a tier that cannot serialize a value) works
as if it had made the call itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from stratacache.tier import Tier

__all__ = ["RUN", "Rule", "Step", "adrive", "drive"]

RUN = "run"
"""The operation of a step that runs the function being cached (its tier is ``None``)."""

Step = tuple[Tier | None, str, tuple[Any, ...]]
"""One operation a rule asks for: a tier (or ``None`` for :data:`RUN`), a name, arguments."""

T = TypeVar("T")

# Each tier operation a rule may ask for, and the name of its awaitable twin on Tier.
_AWAITED = {
    name: "a" + name
    for name in (
        "lookup",
        "lookup_entry",
        "store",
        "start_computation",
        "commit",
        "abort",
        "remove",
        "clear_group",
        "clear",
        "acquire_refresh",
        "release_refresh",
        "invalidate_tag",
        "pause",
    )
}

Rule = Generator[Step, Any, T]
"""A rule of the engine: yields steps, receives each step's result, returns its own."""


def drive(rule: Rule[T], run: Callable[[], Any] | None = None) -> T:
    """Run ``rule`` synchronously: each step is a plain call; return what the rule returns.

    Args:
        rule: A rule of the engine (a generator).
        run: Calls the function being cached, for the rule's :data:`RUN` steps.
    """
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            tier, operation, arguments = rule.send(send) if error is None else rule.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error = None
        try:
            if tier is None:
                assert run is not None, "a rule that runs the function needs run="
                send = run()
            else:
                send = getattr(tier, operation)(*arguments)
        except BaseException as exc:  # thrown into the rule, which decides what it means
            error, send = exc, None


async def adrive(rule: Rule[T], run: Callable[[], Awaitable[Any]] | None = None) -> T:
    """Run ``rule`` from a coroutine: the same rule as :func:`drive`, awaited step by step.

    Args:
        rule: A rule of the engine (a generator).
        run: Returns the awaitable of the function being cached, for :data:`RUN` steps.
    """
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            tier, operation, arguments = rule.send(send) if error is None else rule.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error = None
        try:
            if tier is None:
                assert run is not None, "a rule that runs the function needs run="
                send = await run()
            elif tier.cache.in_process:
                send = getattr(tier, operation)(*arguments)
            elif tier.native_async:
                send = await getattr(tier, _AWAITED[operation])(*arguments)
            else:
                send = await asyncio.to_thread(getattr(tier, operation), *arguments)
        except BaseException as exc:  # thrown into the rule, which decides what it means
            error, send = exc, None
