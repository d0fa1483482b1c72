"""Single flight: concurrent callers missing one key in one process run the function once.

The first caller (the leader) computes; the others wait for its flight and take its result,
re-read from the first tier so a serializing tier hands each caller its own copy. If the
leader raises, its exception is its own, and one waiter leads the next attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from stratacache.backend import NO_VALUE

__all__ = ["Flights"]


class _Flight:
    """One in-process computation that concurrent callers of the same key wait for."""

    __slots__ = ("done", "ok", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


class Flights:
    """The flights of one decorated function, by key."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()

    def run(
        self,
        key: str,
        lead: Callable[[], Any],
        reread: Callable[[], Any],
        on_wait: Callable[[], None],
    ) -> Any:
        """Return ``lead()``'s result, computed once for concurrent callers of ``key``.

        Args:
            key: The key being computed.
            lead: What the leader runs: re-check the tiers, else compute and store.
            reread: What a waiter reads once the leader succeeded (its own copy), or
                :data:`~stratacache.NO_VALUE` to take the leader's object.
            on_wait: Called each time a caller waits for another's flight.
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
                    flight.value, flight.ok = value, True
                    return value
                finally:
                    with self._lock:
                        del self._flights[key]
                    flight.done.set()
            on_wait()
            flight.done.wait()
            if flight.ok:
                value = reread()
                return flight.value if value is NO_VALUE else value
