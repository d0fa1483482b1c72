"""A clock that tests move by hand, for the expiry of in-process tiers.

Give it to a backend that takes ``clock=`` (SimpleCache and SimpleCacheNoSerializer, and
the conformance suite's backends with ``accepts_clock = True``), and build the stack in
code::

    from stratacache import CacheStack, TierSpecOf
    from stratacache.testing import FakeClock
    from stratacache_plugins.simple import SimpleCache

    clock = FakeClock()
    stack = CacheStack.from_tiers([TierSpecOf(SimpleCache(clock=clock), name="memory")])

    @cached_for(seconds=30, stack=stack)
    def rates() -> dict[str, float]: ...

    clock.advance(31)  # the entry of rates() has expired, with no sleep

A server keeps its own time (Redis expires keys on its clock): tests of a shared tier sleep.
"""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Returns a time in seconds that only :meth:`advance` moves.

    Args:
        start: The first time it tells (a plausible UNIX time by default).
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """The current time, in seconds."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds}) needs seconds >= 0")
        self.now += seconds
