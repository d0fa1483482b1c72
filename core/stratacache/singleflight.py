"""Single flight: concurrent callers missing one key in one process run the function once.

The first caller (the leader) computes; the others wait for its flight and take its result,
re-read from the first tier so a serializing tier hands each caller its own copy. If the
leader raises, every caller that waited for it gets that exception: a failing function runs
once per wave of callers, not once per caller in turn. A wait is bounded: past ``bound``
seconds a waiter stops waiting and computes on its own. After ``fork()`` the child starts
with an empty table and a free lock (:mod:`stratacache.forksafe`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from stratacache.backend import NO_VALUE
from stratacache.forksafe import renew_in_child

__all__ = ["Flights"]


class _Flight:
    """One in-process computation that concurrent callers of the same key wait for."""

    __slots__ = ("done", "error", "ok", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None
        self.error: BaseException | None = None


class Flights:
    """The flights of one decorated function, by key."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        renew_in_child(self, "_lock")

    def _after_fork(self) -> None:
        # The leaders of these flights are threads the child does not have.
        self._flights = {}

    def run(
        self,
        key: str,
        lead: Callable[[], Any],
        reread: Callable[[], Any],
        on_wait: Callable[[], None],
        bound: float = 60.0,
    ) -> Any:
        """Return ``lead()``'s result, computed once for concurrent callers of ``key``.

        Args:
            key: The key being computed.
            lead: What the leader runs: re-check the tiers, else compute and store.
            reread: What a waiter reads once the leader succeeded (its own copy), or
                :data:`~stratacache.NO_VALUE` to take the leader's object.
            on_wait: Called each time a caller waits for another's flight.
            bound: The longest a caller waits, in seconds; then it runs ``lead()`` itself.

        Raises:
            BaseException: What ``lead()`` raised, in the leader and in each of its waiters.
        """
        while True:
            with self._lock:
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = _Flight()
            if leader:
                try:
                    value = lead()
                except BaseException as exc:
                    flight.error = exc
                    raise
                else:
                    flight.value, flight.ok = value, True
                    return value
                finally:
                    with self._lock:
                        if self._flights.get(key) is flight:
                            del self._flights[key]
                    flight.done.set()
            on_wait()
            if not flight.done.wait(bound):
                return lead()  # the leader is stuck: do not wait past the bound
            if flight.ok:
                value = reread()
                return flight.value if value is NO_VALUE else value
            if flight.error is not None:
                raise flight.error
