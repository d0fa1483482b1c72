"""Coherent local tiers: applying another instance's changes to this stack's upper tiers.

A backend shared by every instance of a service (Redis) may offer to announce changes: it
then has a method ``attach_invalidation(receiver)``, which the stack calls when it installs
its tiers, with an :class:`InvalidationReceiver` for the in-process tiers above that backend
(or ``None`` when there is none), and again with ``None`` when it lets the backend go. The
backend tells other instances what its writes, deletes and clears changed, listens for what
theirs changed, and calls the receiver, which drops from this stack's upper tiers:

* the keys another instance wrote or deleted (:meth:`InvalidationReceiver.drop_keys`);
* every entry of a function (``clear_cache``, :meth:`~InvalidationReceiver.drop_group`);
* every entry carrying a tag (``invalidate_tags``, :meth:`~InvalidationReceiver.drop_tags`);
* everything (``clear()``, :meth:`~InvalidationReceiver.drop_all`).

While the backend's channel is lost, it cannot know what it missed: it calls
:meth:`~InvalidationReceiver.channel_lost`, which flushes the upper tiers, and
:meth:`~InvalidationReceiver.channel_ready` once it listens again, which flushes them once
more (what was cached during the loss may be stale too). A tier whose backend can clear all
but some keys (:class:`KeepingClear`: SimpleCache) keeps the envelopes of functions with
freshness options through those flushes, for **fail-safe only**: the plain values go, and
an envelope written before the last such flush (:attr:`InvalidationReceiver.suspect_before`)
is read as expired at that moment (:func:`suspected`), so it never answers as a hit, fresh
or stale, and answers a failed computation only within its ``fail_safe`` window.

Auto-recovery (:mod:`stratacache.recovery`) drops through the same receiver the local
copies written while the store below failed (:meth:`InvalidationReceiver.forget`), once it
answers again; each flush first tells it (:attr:`InvalidationReceiver.on_flush`) that the
copies written until then are gone (:func:`attach_rechecks`).

A read that fills the upper tiers from a deeper one races a drop: the value it read may be
older than a change applied while it was on its way up. :attr:`InvalidationReceiver.epoch`
counts the drops; the engine reads it before reading a deeper tier and does not fill when it
moved (:func:`unchanged_since`). This module knows no backend.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, runtime_checkable

from stratacache.forksafe import renew_in_child
from stratacache.freshness import COMPANION, Envelope, clock, companion_key
from stratacache.tier import Tier

if TYPE_CHECKING:
    from stratacache.stats import StatsSnapshot

__all__ = [
    "ChannelState",
    "InvalidationCounts",
    "InvalidationReceiver",
    "InvalidationSource",
    "KeepingClear",
    "attach_receivers",
    "attach_rechecks",
    "detach",
    "epoch_of",
    "suspected",
    "unchanged_since",
    "with_channel",
]

logger = logging.getLogger("stratacache.coherence")

ChannelState = Literal["connecting", "subscribed", "lost", "off"]
"""Where a stack's invalidation channel is: not subscribed yet, listening, lost, or off."""


class InvalidationCounts(TypedDict):
    """The ``invalidation`` part of :meth:`CacheStack.stats() <stratacache.CacheStack.stats>`.

    Attributes:
        state: The channel's :data:`ChannelState`.
        received: Invalidations received from other instances and applied.
        keys_dropped: Keys those invalidations named (a group or a full clear counts none).
        flushes_after_loss: Flushes of the upper tiers because the channel was lost, or
            because it was back after a loss.
    """

    state: ChannelState
    received: int
    keys_dropped: int
    flushes_after_loss: int


@runtime_checkable
class InvalidationSource(Protocol):
    """A backend that announces its changes to other instances (see the module docstring)."""

    def attach_invalidation(self, receiver: InvalidationReceiver | None) -> None:
        """Announce changes, and apply other instances' to ``receiver`` (``None``: stop)."""


@runtime_checkable
class KeepingClear(Protocol):
    """An in-process backend that can clear every entry but those it is told to keep."""

    def clear_except(self, keep: Callable[[str], bool]) -> bool:
        """Remove every entry whose key ``keep`` refuses; return True."""


def _is_envelope(key: str) -> bool:
    return key.endswith(COMPANION)


class InvalidationReceiver:
    """The upper tiers of one stack, as another instance's changes reach them.

    The backend's listener calls its methods from its own thread; each is safe to call from
    any thread. They act on the tiers' backends directly: another instance's change is not
    an operation of this one, so plugins' operation hooks do not see it (its own counters
    here do).

    Attributes:
        tiers: The in-process tiers above the announcing backend.
        origin: Set by the backend: what its messages carry, so that the receiver of the
            stack that wrote them ignores them (own writes keep their fresh copies).
        epoch: Moves on every drop (see :func:`unchanged_since`).
        groups: The functions decorated with the stack. A backend whose changes travel on
            one channel per function (a Redis Cluster's, in each function's slot) listens
            on theirs, and on a new one's when :meth:`watch` names it.
        on_watch: Set by such a backend: called with each function :meth:`watch` adds.
        suspect_before: The wall-clock time (:func:`stratacache.freshness.clock`) of the
            last flush after a loss: envelopes kept through it and written before it are
            fail-safe only (see :func:`suspected`); ``-inf`` before any.
    """

    def __init__(self, tiers: tuple[Tier, ...]) -> None:
        self.tiers = tiers
        self.origin = ""
        self.epoch = 0
        self.state: ChannelState = "connecting"
        self.received = 0
        self.keys_dropped = 0
        self.flushes_after_loss = 0
        self.groups: set[str] = set()
        self.on_watch: Callable[[str], None] | None = None
        self.suspect_before = float("-inf")
        self.on_flush: list[Callable[[], None]] = []
        """Called before each flush of the tiers (auto-recovery's ``Recovery.covered``)."""
        self._lost = False
        self._lock = threading.Lock()
        renew_in_child(self, "_lock")

    def watch(self, group: str) -> None:
        """Add ``group`` (a function decorated with the stack) to :attr:`groups`."""
        if group in self.groups:
            return
        self.groups.add(group)
        on_watch = self.on_watch
        if on_watch is not None:
            on_watch(group)

    def drop_keys(self, keys: Iterable[str], group: str | None = None) -> None:
        """Drop ``keys`` (tracked in ``group``, if given) from the upper tiers."""
        count = 0
        with self._lock:
            self.epoch += 1
            for key in keys:
                count += 1
                self._drop(key, group)
            self.received += 1
            self.keys_dropped += count

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        """Drop ``keys`` (key, group or ``""``), this stack's own copies, from the upper tiers.

        Auto-recovery's rechecks (:mod:`stratacache.recovery`): written while a store below
        was unreachable. Not another instance's change: not counted as received.
        """
        with self._lock:
            self.epoch += 1
            for key, group in keys:
                self._drop(key, group or None)

    def flush_above(self) -> None:
        """Flush the upper tiers for auto-recovery (too many rechecks), envelopes kept."""
        with self._lock:
            self._flush(keeping=True)

    def _drop(self, key: str, group: str | None) -> None:
        for tier in self.tiers:
            cache = tier.cache
            if group is None:
                self._quietly(cache.delete, key)
            else:
                self._quietly(cache.delete_tracked, key, group)
            self._quietly(cache.delete, companion_key(key))  # its envelope, if any

    def drop_group(self, group: str) -> None:
        """Drop every entry of ``group`` (a function's ``clear_cache``) from the upper tiers."""
        with self._lock:
            self.epoch += 1
            for tier in self.tiers:
                self._quietly(tier.cache.clear_tracked, group)
            self.received += 1

    def drop_tags(self, tags: Iterable[str]) -> None:
        """Drop every entry carrying one of ``tags`` (``invalidate_tags``) from the upper tiers.

        Each tier resolves the tags against its own index: the local copies of tagged
        entries are written with their tags (fills included).
        """
        with self._lock:
            self.epoch += 1
            for tag in tags:
                for tier in self.tiers:
                    self._quietly(tier.cache.invalidate_tag, tag)
            self.received += 1

    def drop_all(self) -> None:
        """Drop everything from the upper tiers (another instance's ``clear()``)."""
        with self._lock:
            self._flush()
            self.received += 1

    def channel_lost(self) -> None:
        """The channel is lost: flush the upper tiers (once per loss), until it is back."""
        with self._lock:
            self.state = "lost"
            if not self._lost:
                self._lost = True
                self._flush(keeping=True)
                self.flushes_after_loss += 1

    def channel_ready(self) -> None:
        """The channel listens: flush what was cached while it did not, and mark it so.

        The first subscription flushes too (without counting it as a loss): entries cached
        before it (a forked child's copies of its parent's) were never covered.
        """
        with self._lock:
            self._flush(keeping=True)
            if self._lost:
                self.flushes_after_loss += 1
                self._lost = False
            self.state = "subscribed"

    def counts(self) -> InvalidationCounts:
        """Return the receiver's counters (see :class:`InvalidationCounts`)."""
        return InvalidationCounts(
            state=self.state,
            received=self.received,
            keys_dropped=self.keys_dropped,
            flushes_after_loss=self.flushes_after_loss,
        )

    def _flush(self, *, keeping: bool = False) -> None:
        """Clear the upper tiers; ``keeping``: their envelopes stay, for fail-safe only."""
        for covered in self.on_flush:  # first: a copy written after the call is rechecked
            covered()
        self.epoch += 1
        if keeping:
            self.suspect_before = clock()
        for tier in self.tiers:
            cache = tier.cache
            if keeping and isinstance(cache, KeepingClear):
                self._quietly(cache.clear_except, _is_envelope)
            else:
                self._quietly(cache.clear)

    @staticmethod
    def _quietly(operation: Any, *args: Any) -> None:
        # An in-process tier does not fail; a custom one may, and the listener must go on
        # applying what it receives.
        try:
            operation(*args)
        except Exception:
            logger.exception("applying an invalidation to a local tier failed")


def attach_receivers(
    every: tuple[Tier, ...], configured: tuple[Tier, ...], groups: Iterable[str] = ()
) -> InvalidationReceiver | None:
    """Attach a receiver to each announcing backend of ``every``; return the stack's one.

    ``groups`` are the functions decorated with the stack (the receiver's :attr:`groups
    <InvalidationReceiver.groups>`).

    ``every`` is a stack's tiers, the by-reference one first; ``configured`` those the
    configuration names. A backend with a configured in-process tier above it gets a
    receiver, which drops from every in-process tier above it (the by-reference one
    included); a deeper announcing backend (a second Redis) gets ``None``, and so does one
    with only the implicit by-reference tier above it.
    """
    receiver: InvalidationReceiver | None = None
    for index, tier in enumerate(every):
        cache = tier.cache
        if not isinstance(cache, InvalidationSource) or cache.in_process:
            continue
        above = tuple(t for t in every[:index] if t.cache.in_process and t.cache.stores)
        wanted = any(t in configured for t in above)
        mine = InvalidationReceiver(above) if wanted and receiver is None else None
        if mine is not None:
            mine.groups = set(groups)
        cache.attach_invalidation(mine)
        receiver = receiver or mine
    return receiver


def attach_rechecks(every: tuple[Tier, ...], receiver: InvalidationReceiver | None) -> None:
    """Give each auto-recovery queue of ``every`` (a stack's tiers) the in-process tiers above.

    The stack's ``receiver`` when it drops from those very tiers, so that its channel's
    flushes cover the rechecks; else a receiver of their own, with no channel (``"off"``).
    """
    for index, tier in enumerate(every):
        recovery = tier.recovery
        if recovery is None:
            continue
        above = tuple(t for t in every[:index] if t.cache.in_process and t.cache.stores)
        mine = receiver
        if mine is None or mine.tiers != above:
            mine = InvalidationReceiver(above)
            mine.state = "off"
        mine.on_flush.append(recovery.covered)
        recovery.above = mine


def detach(tiers: Iterable[Tier]) -> None:
    """Stop the announcing backends of ``tiers`` from applying changes (a stack let go)."""
    for tier in tiers:
        if isinstance(tier.cache, InvalidationSource):
            tier.cache.attach_invalidation(None)


def epoch_of(receiver: InvalidationReceiver | None) -> int:
    """The receiver's epoch now (0 without one), read before reading a deeper tier."""
    return 0 if receiver is None else receiver.epoch


def unchanged_since(receiver: InvalidationReceiver | None, epoch: int) -> bool:
    """Whether no drop happened since ``epoch``: a value read then may fill the upper tiers."""
    return receiver is None or receiver.epoch == epoch


def suspected(receiver: InvalidationReceiver | None, entry: Envelope) -> Envelope:
    """``entry``, read from an upper tier, as the last flush after a loss lets it serve.

    An envelope written before that flush was kept for fail-safe only: it is returned as
    expired at the moment of the flush (or at its own expiry, if earlier), so it is never
    served as a hit, and its fail-safe window ends no later than it would have.
    """
    if receiver is None or entry.created >= receiver.suspect_before:
        return entry
    expired = min(entry.hard, receiver.suspect_before)
    return dataclasses.replace(entry, soft=expired, hard=expired)


def with_channel(snapshot: StatsSnapshot, receiver: InvalidationReceiver | None) -> StatsSnapshot:
    """Return ``snapshot`` with the receiver's counters as its ``invalidation``, if any."""
    if receiver is not None:
        snapshot["invalidation"] = receiver.counts()
    return snapshot
