"""Multi-step Redis operations written once, run by sync or asyncio code: *plans*.

An ``atomic_writes`` operation is several round trips with waits in between (ask for the
lock, poll for another caller's result, commit under the lock). Each is written once, as a
generator that yields the steps it needs and receives their results, the way the engine's
rules are (:mod:`stratacache.driver`): :func:`run_plan` runs it with the synchronous client
and ``time.sleep``, :func:`arun_plan` with this event loop's ``redis.asyncio`` client and
``asyncio.sleep``, so a caller waiting for a lock never holds a thread. The steps:

* :class:`Call`: an action through the backend's failure policy (``_run``/``_arun``);
* :class:`Direct`: an action on the client, whose Redis failure is thrown into the plan;
* :class:`Sleep`: a pause;
* :class:`Read`: the backend's ``lookup`` (``alookup``) of a key;
* :class:`Decode`: the backend's ``_loads`` (``_aloads``) of stored bytes;
* :class:`Failed`: a failure the plan caught, noted by ``_note_error`` (whose check of a
  large write's lost connection pings Redis on the same client kind).

Whatever a step raises (a Redis failure, a cancellation of the awaiting task, an interrupt)
is thrown into the plan at its ``yield``, so its ``try``/``except`` releases what it holds
(an ``at_most_once`` lock) as if it had made the call itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from stratacache_plugins.rediscache.client import RedisFailure

if TYPE_CHECKING:
    from stratacache_plugins.rediscache.noexceptions import RedisCacheNoExceptions

__all__ = ["Call", "Decode", "Direct", "Failed", "Plan", "Read", "Sleep", "arun_plan", "run_plan"]

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Run ``action`` through the backend's failure policy; ``fallback`` when it fails."""

    operation: str
    action: Callable[[Any], Any]
    fallback: Any = None


@dataclass(frozen=True)
class Direct:
    """Run ``action`` on the client; a Redis failure is thrown into the plan."""

    action: Callable[[Any], Any]


@dataclass(frozen=True)
class Sleep:
    """Pause for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Read:
    """The backend's lookup of ``key``: the value or ``NO_VALUE``."""

    key: str


@dataclass(frozen=True)
class Decode:
    """The backend's decoding of ``data`` stored under ``key`` (an unreadable one: a miss)."""

    key: str
    data: Any


@dataclass(frozen=True)
class Failed:
    """Note ``error`` (of an operation that sent ``payload`` bytes); answers if an outage."""

    operation: str
    error: RedisFailure
    payload: int = 0


Step = Call | Direct | Sleep | Read | Decode | Failed
Plan = Generator[Step, Any, T]
"""A multi-step operation: yields steps, receives each step's result, returns its own."""


def run_plan(backend: RedisCacheNoExceptions, plan: Plan[T]) -> T:
    """Run ``plan`` with the synchronous client; return what it returns."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = plan.send(send) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error, send = None, None
        try:
            if isinstance(step, Call):
                send = backend._run(step.operation, step.action, step.fallback)
            elif isinstance(step, Direct):
                send = step.action(backend.client)
            elif isinstance(step, Sleep):
                time.sleep(step.seconds)
            elif isinstance(step, Read):
                send = backend.lookup(step.key)
            elif isinstance(step, Decode):
                send = backend._loads(step.key, step.data)
            else:
                send = backend._note_error(step.operation, step.error, step.payload)
        except BaseException as exc:  # thrown into the plan, which decides what it means
            error = exc


async def arun_plan(backend: RedisCacheNoExceptions, plan: Plan[T]) -> T:
    """Run ``plan`` with this event loop's ``redis.asyncio`` client, awaited."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = plan.send(send) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error, send = None, None
        try:
            if isinstance(step, Call):
                send = await backend._arun(step.operation, step.action, step.fallback)
            elif isinstance(step, Direct):
                send = await backend._acall(step.action)
            elif isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Read):
                send = await backend.alookup(step.key)
            elif isinstance(step, Decode):
                send = await backend._aloads(step.key, step.data)
            else:
                maybe = backend._maybe_too_large(step.error, step.payload)
                answers = await backend._aanswers() if maybe else None
                send = backend._note_error(
                    step.operation, step.error, step.payload, answers=answers
                )
        except BaseException as exc:  # a cancellation too: the plan releases what it holds
            error = exc
