"""The slow path of a function with freshness options, for sync and ``async def`` functions.

A local hit never comes here: an in-process tier keeps the plain value only while it is
fresh (:mod:`stratacache.freshness`). After a miss there, both flows drive the same rules
(:mod:`stratacache.freshrules`) and take the same decisions:

1. read the envelopes; a **fresh** one is the answer;
2. a **stale** one is the answer at once, and one background refresh is started (a
   :class:`~stratacache.refresh.Refresher` job, or a task under asyncio);
3. otherwise the function is computed in the foreground: under ``soft_timeout`` (when a
   stale value exists: it is the answer after that long) and ``hard_timeout``
   (:class:`~stratacache.ComputeTimeout` after that long), on the pool or as a task so the
   computation goes on and stores its result;
4. if the computation fails and a value past its expiry is still within ``fail_safe``, that
   value is the answer, with a warning logged and counted; else the exception propagates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from stratacache import freshrules
from stratacache.backend import NO_VALUE
from stratacache.coherence import epoch_of
from stratacache.driver import adrive, drive
from stratacache.errors import ComputeTimeout
from stratacache.freshness import Envelope, Freshness, State, clock
from stratacache.observe import aobserved_refresh, aobserved_run, observed_refresh, observed_run
from stratacache.refresh import AsyncRefresher, refresher
from stratacache.route import Route

if TYPE_CHECKING:
    from stratacache.asynccall import AsyncCachedCall
    from stratacache.call import CachedCall

__all__ = ["FreshPath"]

logger = logging.getLogger("stratacache.decorator")


def _missing(key: str) -> Any:
    return NO_VALUE


class FreshPath:
    """The freshness flows of one decorated function (``call``), sync and async."""

    def __init__(self, call: CachedCall[Any, Any], policy: Freshness) -> None:
        self.call = call
        self.policy = policy
        self.async_refresher = AsyncRefresher()
        self._compute_rule = (
            freshrules.coordinated_rule
            if call.atomic == "at_most_once"
            else freshrules.compute_rule
        )
        """How a miss computes: under the deepest tier's lease with ``at_most_once``."""

    def adapt(self, route: Route) -> None:
        """Fit a new ``route`` of the function: a finite duration, and the right hot path.

        A first tier outside the process keeps envelopes under the key itself, so the hot
        path must not return what it reads there: every call comes to :meth:`miss`.

        Raises:
            ValueError: The function's duration is 0 (never expire): nothing goes stale.
        """
        if route.timeouts[-1] == 0:
            raise ValueError(
                f"cached_for({self.call.group}): refresh_after, stale_after, fail_safe and the"
                " timeouts need a duration, and the function's is 0 (never expire, from"
                " CACHE_DEFAULT_TIMEOUT=0); give it one, e.g. cached_for(minutes=10, ...)"
            )
        if not route.first.cache.in_process:
            route.lookup = _missing

    def _workers(self, route: Route) -> int:
        state = route.state
        return state.settings.cache_refresh_workers if state is not None else 4

    def _fail_safe(self, route: Route, key: str, entry: Envelope | None, exc: Exception) -> Any:
        """Answer a failed computation with ``entry``'s value, or re-raise ``exc``."""
        if entry is None or self.policy.state(entry, clock()) is State.DEAD:
            raise exc
        route.counts.fail_safe_served += 1
        logger.warning(
            "%s: serving the last good value of %r (%.0f s old) because its computation failed: %r",
            self.call.group,
            key,
            clock() - entry.created,
            exc,
        )
        return entry.value

    # -- synchronous ----------------------------------------------------------------------

    def miss(self, route: Route, key: str, args: Any, kwargs: Any) -> Any:
        """Answer a call whose first tier had no fresh plain value."""
        policy, call = self.policy, self.call
        since = epoch_of(route.receiver)
        entry, state = drive(freshrules.answer_rule(route, policy, key, since))
        if entry is not None and state is State.FRESH:
            return entry.value
        run = observed_run(route, key, functools.partial(call._run, route.counts, args, kwargs))
        if entry is not None and state is State.STALE:
            self._refresh(route, key, entry, run)
            return entry.value
        stale = entry if state is State.FAIL_SAFE else None
        rule = self._compute_rule

        def compute() -> Any:
            return drive(rule(route, policy, key, call.guard), run)

        try:
            if not policy.timed:
                return compute()
            future = refresher(call.stack, self._workers(route)).submit(compute)
            return self._wait(route, key, future, stale, since)
        except Exception as exc:
            value = self._fail_safe(route, key, stale, exc)
            drive(freshrules.stale_copy_rule(route, key, stale, since))  # type: ignore[arg-type]
            return value

    def _refresh(self, route: Route, key: str, entry: Envelope, run: Any) -> None:
        counts, policy, guard = route.counts, self.policy, self.call.guard

        def job() -> None:
            if drive(freshrules.refresh_rule(route, policy, key, entry, guard), run):
                counts.refreshes += 1

        pool = refresher(self.call.stack, self._workers(route))
        pool.refresh((route.group, key), observed_refresh(route, key, job), counts)

    def _wait(
        self,
        route: Route,
        key: str,
        future: concurrent.futures.Future[Any],
        stale: Envelope | None,
        since: int,
    ) -> Any:
        policy, started = self.policy, time.monotonic()
        if stale is not None and policy.soft_timeout is not None:
            try:
                return future.result(policy.soft_timeout)
            except concurrent.futures.TimeoutError:
                route.counts.soft_timeouts += 1
                drive(freshrules.stale_copy_rule(route, key, stale, since))
                return stale.value
        if policy.hard_timeout is None:
            return future.result()
        try:
            return future.result(max(0.0, policy.hard_timeout - (time.monotonic() - started)))
        except concurrent.futures.TimeoutError:
            route.counts.hard_timeouts += 1
            raise self._timeout(key) from None

    def _timeout(self, key: str) -> ComputeTimeout:
        return ComputeTimeout(
            f"{self.call.group}: computing {key!r} took longer than hard_timeout="
            f"{self.policy.hard_timeout}s; it goes on in the background and stores its"
            " result. Raise hard_timeout, or give fail_safe= to answer with the last value"
        )

    # -- asynchronous ---------------------------------------------------------------------

    async def amiss(self, route: Route, key: str, args: Any, kwargs: Any) -> Any:
        """:meth:`miss`, for an ``async def`` function: refreshes and computations are tasks."""
        policy = self.policy
        call: AsyncCachedCall = self.call  # type: ignore[assignment]
        since = epoch_of(route.receiver)
        entry, state = await adrive(freshrules.answer_rule(route, policy, key, since))
        if entry is not None and state is State.FRESH:
            return entry.value
        run = aobserved_run(route, key, functools.partial(call._arun, route.counts, args, kwargs))
        if entry is not None and state is State.STALE:
            self._arefresh(route, key, entry, run)
            return entry.value
        stale = entry if state is State.FAIL_SAFE else None
        compute = adrive(self._compute_rule(route, policy, key, call.guard), run)
        try:
            if not policy.timed:
                return await compute
            task = asyncio.ensure_future(compute)
            self.async_refresher.keep(task)
            return await self._await(route, key, task, stale, since)
        except Exception as exc:
            value = self._fail_safe(route, key, stale, exc)
            await adrive(freshrules.stale_copy_rule(route, key, stale, since))  # type: ignore[arg-type]
            return value

    def _arefresh(self, route: Route, key: str, entry: Envelope, run: Any) -> None:
        counts, policy, guard = route.counts, self.policy, self.call.guard

        async def job() -> None:
            if await adrive(freshrules.refresh_rule(route, policy, key, entry, guard), run):
                counts.refreshes += 1

        observed = aobserved_refresh(route, key, job)
        self.async_refresher.refresh((route.group, key), observed, counts, self._workers(route))

    async def _await(
        self, route: Route, key: str, task: asyncio.Task[Any], stale: Envelope | None, since: int
    ) -> Any:
        policy, started = self.policy, time.monotonic()
        if stale is not None and policy.soft_timeout is not None:
            try:
                return await asyncio.wait_for(asyncio.shield(task), policy.soft_timeout)
            except TimeoutError:
                route.counts.soft_timeouts += 1
                await adrive(freshrules.stale_copy_rule(route, key, stale, since))
                return stale.value
        if policy.hard_timeout is None:
            return await task
        left = max(0.0, policy.hard_timeout - (time.monotonic() - started))
        try:
            return await asyncio.wait_for(asyncio.shield(task), left)
        except TimeoutError:
            route.counts.hard_timeouts += 1
            raise self._timeout(key) from None
