"""The load of the failover scenarios (issue 12): worker processes and what they measured.

A worker process (:func:`load_main`, run by ``_Worker`` of ``test_atomic_writes``) has two
stacks on the topology its ``TOPOLOGY_LOAD`` variable describes: one with a
RedisCacheNoExceptions tier, one with a RedisCacheAtomic tier, both without a local layer,
so every call reaches Redis. Its threads call two cached functions in a loop: ``hot`` on
the NoExceptions tier (a few arguments, cached once and then hits) and ``hot`` under
``at_most_once`` on the Atomic tier (a new argument every 200 ms, shared by every thread of
every worker, so each argument should be computed once). Both functions are the same
function of :func:`_cached`, so their keys share one hash tag: one cluster slot, the hot
slot. The worker says ``ready`` once the NoExceptions entries are cached, runs for
``seconds``, then prints what each call did as one JSON line.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stratacache import CacheStack, cached_for

HOT_KEYS = 20
ONCE_EVERY = 0.2  # seconds: a new at_most_once argument, the same in every worker
LENIENT_PREFIX, ATOMIC_PREFIX = "hot_", "once_"
ATOMIC = {"CACHE_ATOMIC_WAIT": 5, "CACHE_ATOMIC_OUTAGE_AFTER": 1}
HOT_TAG = "{" + __name__ + "._cached.<locals>.hot}"
"""The hash tag of every key of both functions: its slot is the hot slot."""


def _cached(stack: CacheStack, mode: str | None, computed: Callable[[int], None]) -> Any:
    @cached_for(minutes=5, stack=stack, atomic_writes=mode)  # type: ignore[arg-type]
    def hot(x: int) -> int:
        computed(x)
        return x * 3

    return hot


def _error(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"


def load_main() -> None:
    """Run the load described by ``$TOPOLOGY_LOAD`` (JSON: settings, threads, seconds)."""
    spec = json.loads(os.environ["TOPOLOGY_LOAD"])
    base = {**spec["settings"], "LOCALCACHE_TYPE": "NullCache"}
    lenient, atomic = CacheStack(), CacheStack()
    lenient.configure(
        {**base, "CACHE_TYPE": "RedisCacheNoExceptions", "CACHE_KEY_PREFIX": LENIENT_PREFIX}
    )
    atomic.configure(
        {**base, **ATOMIC, "CACHE_TYPE": "RedisCacheAtomic", "CACHE_KEY_PREFIX": ATOMIC_PREFIX}
    )
    local = threading.local()
    once_computed: list[tuple[int, float]] = []

    def computed_hot(x: int) -> None:
        local.computed = True

    def computed_once(x: int) -> None:
        once_computed.append((x, time.monotonic()))

    hot = _cached(lenient, None, computed_hot)
    once = _cached(atomic, "at_most_once", computed_once)
    for x in range(HOT_KEYS):
        hot(x)
    print("ready", flush=True)
    end = time.monotonic() + float(spec["seconds"])
    calls: list[list[list[Any]]] = [[] for _ in range(spec["threads"])]

    def worker(n: int) -> None:
        i = n
        while (began := time.monotonic()) < end:
            local.computed = False
            try:
                wrong = hot(i % HOT_KEYS) != (i % HOT_KEYS) * 3
                error = "wrong value" if wrong else None
            except Exception as exc:  # every exception is a finding
                error = _error(exc)
            took = time.monotonic() - began
            calls[n].append(["hot", began, took, not local.computed, error])
            x = int(time.monotonic() / ONCE_EVERY)
            began = time.monotonic()
            try:
                error = None if once(x) == x * 3 else "wrong value"
            except Exception as exc:
                error = _error(exc)
            calls[n].append(["once", began, time.monotonic() - began, None, error])
            i += 1
            time.sleep(0.002)  # the rest of a request's work

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(spec["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    json.dump({"calls": [c for t in calls for c in t], "once": once_computed}, sys.stdout)
    print(flush=True)


@dataclass
class Load:
    """What the workers of one run did, for the figures.

    ``calls`` rows are ``[function, began, took, hit, error]`` (``hit`` None for ``once``),
    ``once`` rows ``[argument, when]``, times on the machine's monotonic clock (shared by
    every process).
    """

    calls: list[list[Any]]
    once: list[list[Any]]

    @classmethod
    def merge(cls, results: list[dict[str, Any]]) -> Load:
        """The rows of every worker's result."""
        return cls(
            [c for r in results for c in r["calls"]], [o for r in results for o in r["once"]]
        )

    def errors(self, function: str) -> list[str]:
        """The exceptions (and wrong values) callers of ``function`` saw."""
        return [c[4] for c in self.calls if c[0] == function and c[4] is not None]

    def longest(self, since: float, function: str | None = None) -> float:
        """The longest call (of ``function``, or of either) running at ``since`` or after."""
        calls = [c for c in self.calls if function in (None, c[0])]
        return max((c[2] for c in calls if c[1] + c[2] >= since), default=0.0)

    def first_hit(self, since: float) -> float:
        """Seconds from ``since`` to the end of the first ``hot`` hit that started after it."""
        ends = [c[1] + c[2] for c in self.calls if c[0] == "hot" and c[3] and c[1] > since]
        return min(ends, default=float("inf")) - since

    def longest_without_hits(self, since: float) -> float:
        """The longest time, from ``since`` on, in which no ``hot`` call hit."""
        ends = sorted(c[1] + c[2] for c in self.calls if c[0] == "hot" and c[3] and c[1] > since)
        marks = [since, *ends]
        return max((b - a for a, b in itertools.pairwise(marks)), default=float("inf"))

    def hit_ratio(self, since: float) -> float:
        """The share of ``hot`` calls started after ``since`` that hit."""
        hot = [c for c in self.calls if c[0] == "hot" and c[1] > since]
        return sum(1 for c in hot if c[3]) / len(hot) if hot else 0.0

    def duplicates(self, start: float, end: float) -> str:
        """The ``at_most_once`` computations in ``[start, end)``: how many, and how many of
        them computed an argument already computed (by any worker, at any earlier time)."""
        seen: set[int] = set()
        computations = extra = 0
        for x, when in sorted(self.once, key=lambda row: row[1]):
            if start <= when < end:
                computations += 1
                extra += x in seen
            seen.add(x)
        return f"{computations} / {extra}"

    @property
    def end(self) -> float:
        """When the last call ended."""
        return max(c[1] + c[2] for c in self.calls)
