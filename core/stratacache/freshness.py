"""Freshness: the entry envelope and the policy of a function cached with freshness options.

``cached_for(minutes=10, refresh_after=0.8, fail_safe=timedelta(hours=1))`` gives each entry
four moments: when it was **created**, when it goes **stale** (its soft expiry: past it, a
caller gets the value at once and one background refresh runs), when it **expires** (its
hard expiry: past it, a caller computes), and when the stale value is **dropped** (the hard
expiry plus the fail-safe window: until then, a computation that fails gives the last good
value instead of its exception).

The envelope carries these moments with the value, as one plain tuple
``(MARK, created, soft, hard, compute_seconds, value)``: a tier's serializer (pickle, JSON)
and signer turn it into bytes once, with the value. Where it is kept:

* in a tier outside the process (Redis, files), under the entry's key, with the store's TTL
  set to the hard expiry plus the fail-safe window;
* in an in-process tier, under the **companion key** ``key + COMPANION`` (same lifetime),
  while the key itself holds the plain value until the soft expiry only. So a local hit
  is the same read as for any function, with no envelope to open and no clock to read: a
  value found there is fresh by construction.

Only functions given a freshness option write envelopes; every other entry is stored as
before, and each backend's object-level API (``get``/``set`` of plain values) is unchanged.
Times are wall-clock seconds (``time.time``), so they mean the same on every host; the
store's TTL stays the authority on when an entry is gone.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

__all__ = [
    "COMPANION",
    "MARK",
    "STALE_COPY_SECONDS",
    "Envelope",
    "Freshness",
    "State",
    "companion_key",
    "freshness_options",
    "unwrapped",
]

MARK = "stratacache.entry/1"
"""The first item of a stored envelope: its format and version."""

COMPANION = "\x00envelope"
"""Appended to a key to name its envelope in an in-process tier."""

STALE_COPY_SECONDS = 1.0
"""How long a stale or fail-safe value served from a tier is kept as a plain local copy.

While a refresh runs, callers in this process then hit their local tier (the usual local
hit) instead of opening the envelope again; a failed refresh is retried after at most this.
"""

clock = time.time
"""The clock of envelopes (wall-clock seconds, comparable across hosts)."""


def companion_key(key: str) -> str:
    """Return the key under which an in-process tier keeps ``key``'s envelope."""
    return key + COMPANION


class State(Enum):
    """What an envelope is worth at a given moment."""

    FRESH = "fresh"
    """Before the soft expiry: served as it is."""
    STALE = "stale"
    """Between the soft and the hard expiry: served at once, and refreshed in the background."""
    FAIL_SAFE = "fail_safe"
    """Past the hard expiry, within the fail-safe window: computed, and served if that fails."""
    DEAD = "dead"
    """Past the fail-safe window: a miss."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """An entry with its moments (wall-clock seconds; see the module docstring).

    Attributes:
        value: The cached value.
        created: When its computation started.
        soft: Its soft expiry (stale from then on).
        hard: Its hard expiry.
        compute_seconds: How long its computation took (XFetch weighs by it).
    """

    value: Any
    created: float
    soft: float
    hard: float
    compute_seconds: float

    def stored(self) -> tuple[Any, ...]:
        """The form a tier stores: a plain tuple (a JSON tier gives it back as a list)."""
        return (MARK, self.created, self.soft, self.hard, self.compute_seconds, self.value)

    @staticmethod
    def read(data: Any) -> Envelope | None:
        """Return the envelope ``data`` holds, or ``None`` if it is not one (a plain value)."""
        # type() first: a plain value's first item may compare as an array (numpy).
        if type(data) not in (tuple, list) or len(data) != 6 or type(data[0]) is not str:
            return None
        if data[0] != MARK:
            return None
        _, created, soft, hard, seconds, value = data
        return Envelope(value, float(created), float(soft), float(hard), float(seconds))


def unwrapped(data: Any, expired: Any) -> Any:
    """What the stack's ``get`` answers for ``data``.

    A plain value as it is; a function's envelope (read from a tier outside the process) as
    its value, or ``expired`` once past its hard expiry (a copy kept for fail-safe only).
    """
    entry = Envelope.read(data)
    if entry is None:
        return data
    return entry.value if clock() < entry.hard else expired


def _seconds(name: str, value: float | timedelta | None, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"cached_for: {name} must be a number of seconds or a timedelta, got {value!r}"
        )
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"cached_for: {name}={value!r} must be a finite number of seconds"
            f" {'>= 0' if allow_zero else '> 0'}"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class Freshness:
    """The freshness options of one function (see :func:`freshness_options`).

    Attributes:
        refresh_after: The soft expiry as a fraction of the duration, or ``None``.
        stale_after: The soft expiry in seconds after creation, or ``None``.
        fail_safe: Seconds a value is kept past its hard expiry to answer for a failure.
        soft_timeout: Seconds a caller waits for a computation when a stale value exists.
        hard_timeout: Seconds a caller waits for a computation at most.
        early_refresh: XFetch's beta (0 = off): refresh hot keys a little before they go
            stale, at random, the earlier the longer their computation takes.
    """

    refresh_after: float | None = None
    stale_after: float | None = None
    fail_safe: float = 0.0
    soft_timeout: float | None = None
    hard_timeout: float | None = None
    early_refresh: float = 0.0

    @property
    def timed(self) -> bool:
        """Whether a foreground computation runs under a timeout (on the executor)."""
        return self.soft_timeout is not None or self.hard_timeout is not None

    def soft_seconds(self, duration: float) -> float:
        """Seconds from creation to the soft expiry, for a function cached ``duration`` s."""
        if self.stale_after is not None:
            return min(self.stale_after, duration)
        if self.refresh_after is not None:
            return self.refresh_after * duration
        return duration

    def envelope(self, value: Any, duration: float, started: float, now: float) -> Envelope:
        """The envelope of ``value``, computed from ``started`` to ``now``."""
        return Envelope(
            value, started, now + self.soft_seconds(duration), now + duration, now - started
        )

    def state(self, entry: Envelope, now: float) -> State:
        """What ``entry`` is worth at ``now`` (XFetch may make a fresh entry stale early)."""
        if now < entry.soft:
            beta = self.early_refresh
            if (
                beta
                and now - entry.compute_seconds * beta * math.log(1.0 - random.random())
                >= entry.soft
            ):
                return State.STALE
            return State.FRESH
        if now < entry.hard:
            return State.STALE
        if now < entry.hard + self.fail_safe:
            return State.FAIL_SAFE
        return State.DEAD


def freshness_options(
    *,
    refresh_after: float | None,
    stale_after: float | timedelta | None,
    fail_safe: float | timedelta | None,
    soft_timeout: float | None,
    hard_timeout: float | None,
    early_refresh: float,
    atomic: str | None = None,
) -> Freshness | None:
    """Validate ``cached_for``'s freshness options; ``None`` when none is given.

    Raises:
        TypeError: An option of the wrong type.
        ValueError: An option out of range, two that contradict each other, or
            ``atomic_writes="at_least_once"`` (``atomic``) given with them.
    """
    given = (refresh_after, stale_after, fail_safe, soft_timeout, hard_timeout)
    if all(option is None for option in given) and not early_refresh:
        return None
    if atomic == "at_least_once":
        raise ValueError(
            "cached_for: atomic_writes='at_least_once' cannot be combined with refresh_after,"
            " stale_after, fail_safe or the timeouts: its commit never replaces a stored"
            " entry (the first write wins), and these options keep an entry stored past its"
            " expiry (stale, fail-safe), so a recomputed value could never replace it; use"
            " atomic_writes='at_most_once', whose lock the refreshes take too"
        )
    if refresh_after is not None:
        if isinstance(refresh_after, bool) or not isinstance(refresh_after, int | float):
            raise TypeError(
                f"cached_for: refresh_after must be a fraction of the duration, got"
                f" {refresh_after!r}; write e.g. refresh_after=0.8"
            )
        if not 0 < refresh_after < 1:
            raise ValueError(
                f"cached_for: refresh_after={refresh_after!r} must be a fraction of the"
                " duration between 0 and 1 (exclusive), e.g. 0.8; for a time, give stale_after="
            )
        if stale_after is not None:
            raise ValueError(
                "cached_for: give refresh_after (a fraction) or stale_after (seconds), not both"
            )
    soft = _seconds("soft_timeout", soft_timeout, allow_zero=False)
    hard = _seconds("hard_timeout", hard_timeout, allow_zero=False)
    if soft is not None and hard is not None and soft >= hard:
        raise ValueError(
            f"cached_for: soft_timeout={soft_timeout!r} must be shorter than"
            f" hard_timeout={hard_timeout!r}"
        )
    if isinstance(early_refresh, bool) or not isinstance(early_refresh, int | float):
        raise TypeError(
            f"cached_for: early_refresh must be a number (XFetch's beta), got {early_refresh!r}"
        )
    if not math.isfinite(early_refresh) or early_refresh < 0:
        raise ValueError(
            f"cached_for: early_refresh={early_refresh!r} must be >= 0 (XFetch's beta: 1 is"
            " the paper's default, 0 turns it off)"
        )
    return Freshness(
        refresh_after=None if refresh_after is None else float(refresh_after),
        stale_after=_seconds("stale_after", stale_after, allow_zero=False),
        fail_safe=_seconds("fail_safe", fail_safe, allow_zero=True) or 0.0,
        soft_timeout=soft,
        hard_timeout=hard,
        early_refresh=float(early_refresh),
    )
