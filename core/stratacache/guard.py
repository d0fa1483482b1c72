"""Invalidations win over computations already running (within one process).

A computation that started before ``f.invalidate(x)`` (or ``f.clear_cache()``,
``cache.delete``, ``cache.clear``) may return a value computed from the data the
invalidation was about. Each computation takes a stamp when it starts; an invalidation
bumps the stamps of the keys being computed; a computation whose stamp moved returns its
value to its caller but writes no tier. Stamps exist only while a key is being computed, so
the guard holds nothing between computations. Other processes' invalidations reach this one
through the shared tier only (the coherent-local-tiers issue builds the channel).
"""

from __future__ import annotations

import threading

from stratacache.forksafe import renew_in_child

__all__ = ["WriteGuard"]


class WriteGuard:
    """The stamps of one decorated function's keys under computation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._stamps: dict[str, int] = {}
        self._epoch = 0
        renew_in_child(self, "_lock")

    def _after_fork(self) -> None:
        self._running, self._stamps = {}, {}

    def begin(self, key: str) -> tuple[int, int]:
        """Note that ``key`` is being computed; return its stamp."""
        with self._lock:
            self._running[key] = self._running.get(key, 0) + 1
            return self._stamps.get(key, 0), self._epoch

    def end(self, key: str, stamp: tuple[int, int]) -> bool:
        """Note that a computation of ``key`` ended; return whether it may be written."""
        with self._lock:
            fresh = (self._stamps.get(key, 0), self._epoch) == stamp
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]
                self._stamps.pop(key, None)
            return fresh

    def invalidate(self, key: str) -> None:
        """``key`` was invalidated: computations of it running now must not be written."""
        with self._lock:
            if key in self._running:
                self._stamps[key] = self._stamps.get(key, 0) + 1

    def invalidate_all(self) -> None:
        """Every entry went: no computation running now may be written."""
        with self._lock:
            self._epoch += 1
