"""Auto-recovery: the invalidations a degrading tier could not deliver, kept and replayed.

A backend that degrades instead of raising (``Backend.degrades``: RedisCacheNoExceptions)
answers a delete it could not carry out like a delete of a missing key, so the entry stays in
the store and would be served again once the store is back. Its :class:`~stratacache.Tier`
keeps one :class:`Recovery` queue, and every invalidation that goes through the tier
(``f.invalidate``, ``cache.delete``, ``f.clear_cache``, ``invalidate_tags``,
``cache.clear``) is compared with the backend's failure count (``stats.errors``): when
the count moved during the call, the operation is remembered. The rules:

* **Deduplicated.** One entry per key, per group (``clear_cache``), per tag; a queued group
  clear covers that group's keys, a queued clear covers everything, so neither keeps them.
* **Bounded.** At most ``CACHE_RECOVERY_MAX`` entries (10,000 by default; 0 turns recovery
  off). One more collapses the queue into a single clear of the tier (the backend's
  ``clear``: for Redis every key under its prefix): more entries are lost than needed, none
  is served stale. The folded entries count as ``recovery_dropped``.
* **Replayed in order**, oldest first, by one daemon thread per queue that tries at once,
  then backs off from 0.05 s, doubling up to 1 s, for as long as the queue is not empty.
  Any operation of the tier that reaches the store (a read, a write) wakes it. An entry
  goes only once its replay reached the store (the failure count did not move); one that
  failed is tried again.
* **Read as invalidated until replayed.** While a key, its group, a tag or a clear is
  queued, this process's reads of that tier miss where it applies (a queued tag or clear:
  every read), so the value it invalidated is not read back here after recovery, even
  before the replay. Other processes read the store: for them the invalidation takes
  effect when the replay runs (at most about a second after the store is back).
* **A write supersedes it.** A write of the key the store accepted after the delete was
  queued removes the queued delete (it replaced the entry). A queued group clear, tag or
  clear is kept: replayed, it may delete that newer entry, a miss, never a stale read.

* **The local copies written meanwhile are re-checked.** A value written while the store
  was unreachable (:func:`failed_write`) lives only in the in-process tiers above; once the
  store is back, another instance may have written or invalidated it there. The engine
  hands such keys to :meth:`Recovery.recheck` once the tiers above hold them; deduplicated,
  bounded like the queue (past ``CACHE_RECOVERY_MAX``, one flush of the tiers above), they
  are dropped from those tiers once the store answers (after the replay), so the next read
  goes to the store. Dropped, not re-read and compared: the next read pays the round trip
  a comparison would pay at once, a key never read again nothing, no value needs an ``==``.
  With the invalidation channel on, its flushes of the tiers above cover them: a flush
  clears the rechecks written before it (:meth:`Recovery.covered`), and while the channel
  is lost or connecting they wait for its flush once it listens again instead of being
  dropped twice; they are dropped only when the channel is off, or stayed subscribed
  through the outage (a short one it did not see).

A limit: an invalidation whose replay fails while the store answers (an error about that
call, not an outage) is retried at the longest back-off, and reads as invalidated here,
until it goes through; the backend logs each failure.

Counted in the tier's ``stats()``: ``recovery_queued`` (operations remembered),
``recovery_replayed`` (replays that reached the store), ``recovery_dropped`` (entries
folded into a clear, or rechecks into a flush, on overflow) and ``recovery_rechecked``
(local copies dropped once the store answered).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from stratacache.forksafe import renew_in_child

if TYPE_CHECKING:
    from stratacache.coherence import InvalidationReceiver
    from stratacache.tier import Tier

__all__ = ["ALL", "Operation", "OutageAware", "Recovery", "failed_write", "failures"]

logger = logging.getLogger("stratacache.recovery")

Operation = tuple[str, ...]
"""What to replay: ``("key", key, group)`` (``group`` ``""`` for none), ``("group", group)``,
``("tag", tag)`` or :data:`ALL`."""

ALL: Operation = ("clear",)
"""The operation that clears the whole tier."""

FIRST_DELAY = 0.05
"""Seconds between the first two replay attempts; doubled after each failed one."""

LONGEST_DELAY = 1.0
"""The longest wait between two replay attempts, in seconds."""

PROBE_KEY = "stratacache:recovery-probe"
"""What a recheck reads to learn whether the store answers, when no key is waiting."""


def failures(tier: Tier) -> int:
    """The failure count of a tier that degrades (0 for any other): a mark before a write."""
    recovery = tier.recovery
    return 0 if recovery is None else recovery.mark()


@runtime_checkable
class OutageAware(Protocol):
    """A degrading backend that tells an outage from an error about one call (``OOM``)."""

    def store_down(self) -> bool:
        """Whether its store counts as unreachable now."""


def failed_write(tier: Tier, mark: int, stored: object) -> Recovery | None:
    """``tier``'s queue if a write not ``stored`` failed on an unreachable store.

    The failure count moved during the write; a backend that tells outages apart
    (:class:`OutageAware`) must also count its store as down: a write refused by a store
    that answers (``OOM``) leaves the copies above alone, or each read would recompute.
    """
    recovery = tier.recovery
    if recovery is None or stored or recovery.mark() == mark:
        return None
    cache = tier.cache
    if isinstance(cache, OutageAware) and not cache.store_down():
        return None
    return recovery


class Recovery:
    """The queue of one degrading tier's undelivered invalidations (see the module docstring).

    Args:
        tier: The tier whose backend degrades.
        limit: The most entries kept (``CACHE_RECOVERY_MAX``, at least 1).
    """

    def __init__(self, tier: Tier, limit: int) -> None:
        self._tier = tier
        self.limit = limit
        self._queue: dict[Operation, Operation] = {}  # by dedup identity, oldest first
        self._keys: set[str] = set()
        self._groups: set[str] = set()
        self._rechecks: dict[str, str] = {}  # key -> group ("" for none), oldest first
        self._flush_above = False  # the rechecks overflowed: flush the tiers above instead
        self.pending = False
        """Whether anything is queued or to recheck (read without the lock on hot paths)."""
        self.above: InvalidationReceiver | None = None
        """The in-process tiers above this one, which rechecks drop from (set by the stack:
        :func:`stratacache.coherence.attach_rechecks`)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        renew_in_child(self, "_lock")

    # -- noticing ------------------------------------------------------------------------

    def mark(self) -> int:
        """The backend's failure count now: compare it after a call with :meth:`after`."""
        return int(self._tier.cache.stats.errors)

    def after(self, mark: int, operation: Operation) -> None:
        """Remember ``operation`` if the backend counted a failure since ``mark``.

        A failure of another thread's call in between also counts: the operation is then
        replayed though it was delivered, which deletes an entry once more, never serves one.
        """
        if self.mark() != mark:
            self.remember(operation)
        elif self.pending:
            self._wake.set()  # the store answered: replay now

    def reached(self, mark: int) -> None:
        """After a read or write while something is queued: wake the replay if it got there.

        It also starts the replay thread again where none runs: a process forked with a
        queue inherits it without its thread.
        """
        if self.mark() == mark:
            self._start()
            self._wake.set()

    def remember(self, operation: Operation) -> None:
        """Queue ``operation``, deduplicated, bounded (see the module docstring)."""
        stats = self._tier.stats
        with self._lock:
            queue = self._queue
            if ALL in queue or self._covered(operation):
                return
            identity = operation[:2]
            if identity not in queue and len(queue) >= self.limit:
                stats.recovery_dropped += len(queue)
                logger.warning(
                    "tier %r: %d invalidations wait for the store, the most"
                    " CACHE_RECOVERY_MAX=%d allows; they are replaced by one clear of the"
                    " tier once it is back (raise CACHE_RECOVERY_MAX to keep them apart)",
                    self._tier.name,
                    len(queue),
                    self.limit,
                )
                operation = identity = ALL
            if operation == ALL:
                queue.clear()
                self._keys.clear()
                self._groups.clear()
            elif operation[0] == "group":
                group = operation[1]
                for stale in [o for o in queue if o[0] == "key" and queue[o][2] == group]:
                    del queue[stale]
                    self._keys.discard(stale[1])
                self._groups.add(group)
            elif operation[0] == "key":
                self._keys.add(operation[1])
            queue.pop(identity, None)  # re-queued: replayed after what came since
            queue[identity] = operation
            stats.recovery_queued += 1
            self.pending = True
        self._start()

    def _covered(self, operation: Operation) -> bool:
        return operation[0] == "key" and operation[2] in self._groups

    def written(self, key: str) -> None:
        """The store accepted a write of ``key``: a queued delete of it is superseded."""
        with self._lock:
            if key in self._keys:
                self._keys.discard(key)
                self._queue.pop(("key", key), None)
            self._rechecks.pop(key, None)  # the store has what was just written above too
            self._settle()
        self._wake.set()

    def _settle(self) -> None:
        """Update :attr:`pending` (with the lock held)."""
        self.pending = bool(self._queue or self._rechecks or self._flush_above)

    # -- rechecking ----------------------------------------------------------------------

    def recheck(self, key: str, group: str | None) -> None:
        """The tiers above hold ``key``, written while the store failed: drop it once back."""
        above = self.above
        if above is None or not above.tiers:
            return
        with self._lock:
            rechecks = self._rechecks
            if self._flush_above:  # the flush drops it with the rest
                pass
            elif key in rechecks or len(rechecks) < self.limit:
                rechecks.pop(key, None)
                rechecks[key] = group or ""
            else:
                self._tier.stats.recovery_dropped += len(rechecks)
                logger.warning(
                    "tier %r: %d local copies written while its store was unreachable, the"
                    " most CACHE_RECOVERY_MAX=%d allows; the tiers above are flushed once"
                    " it is back instead",
                    self._tier.name,
                    len(rechecks),
                    self.limit,
                )
                rechecks.clear()
                self._flush_above = True
            self.pending = True
        self._start()

    def covered(self) -> None:
        """The tiers above are about to be flushed (the channel's flush): no recheck waits.

        Called before the flush: a copy written after this call was registered after it.
        """
        with self._lock:
            self._rechecks.clear()
            self._flush_above = False
            self._settle()

    def rechecks(self) -> list[str]:
        """The keys waiting to be dropped from the tiers above, oldest first (a copy)."""
        with self._lock:
            return list(self._rechecks)

    def _recheck(self) -> bool:
        """Drop the copies to recheck once the store answers; return whether none wait."""
        with self._lock:
            if not self._rechecks and not self._flush_above:
                return True
            probe = next(iter(self._rechecks), PROBE_KEY)
        above = self.above
        if above is None or above.state in ("lost", "connecting"):
            return False  # the channel's flush, once it listens, covers them
        mark = self.mark()
        try:
            self._tier.cache.lookup(probe)
        except Exception:  # a backend that raises after all: try again later
            logger.warning("probing tier %r failed", self._tier.name, exc_info=True)
            return False
        if self.mark() != mark:
            return False
        with self._lock:
            keys, self._rechecks = self._rechecks, {}
            flush, self._flush_above = self._flush_above, False
        if flush:
            above.flush_above()
        else:
            above.forget(keys.items())
            self._tier.stats.recovery_rechecked += len(keys)
        with self._lock:
            self._settle()
        return True

    # -- reading -------------------------------------------------------------------------

    def read(self, key: str, group: str | None, call: Callable[[], Any], missed: Any) -> Any:
        """Read ``key`` through ``call`` while something is queued; ``missed`` if it must miss."""
        if self.blocks(key, group):
            return missed
        mark = self.mark()
        found = call()
        self.reached(mark)
        return found

    def blocks(self, key: str, group: str | None) -> bool:
        """Whether a read of ``key`` must miss: a queued operation invalidated it."""
        with self._lock:
            if not self._queue:
                return False
            if key in self._keys or (group is not None and group in self._groups):
                return True
            return any(o[0] in ("tag", "clear") for o in self._queue)

    # -- replaying -----------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._stopped or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._run, name=f"stratacache-recovery-{self._tier.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        delay = FIRST_DELAY
        while not self._stopped:
            if self.replay() and self._recheck():
                with self._lock:
                    if not self.pending:
                        self._thread = None
                        return
                continue
            self._wake.wait(delay)
            if self._wake.is_set():
                self._wake.clear()
                delay = FIRST_DELAY
            else:
                delay = min(delay * 2, LONGEST_DELAY)

    def replay(self) -> bool:
        """Replay the queue, oldest first, until one fails; return whether all went."""
        while not self._stopped:
            with self._lock:
                if not self._queue:
                    self._settle()
                    return True
                identity, operation = next(iter(self._queue.items()))
            mark = self.mark()
            try:
                self._apply(operation)
            except Exception:  # a backend that raises after all: try again later
                logger.warning("replaying %r failed", operation, exc_info=True)
                return False
            if self.mark() != mark:
                return False
            with self._lock:
                if self._queue.get(identity) == operation:
                    del self._queue[identity]
                    self._forget(operation)
                self._settle()
            self._tier.stats.recovery_replayed += 1
        return False

    def _forget(self, operation: Operation) -> None:
        if operation[0] == "key" and ("key", operation[1]) not in self._queue:
            self._keys.discard(operation[1])
        elif operation[0] == "group":
            self._groups.discard(operation[1])

    def _apply(self, operation: Operation) -> None:
        cache = self._tier.cache
        kind = operation[0]
        calls: dict[str, Callable[[], Any]] = {
            "key": lambda: (
                cache.delete_tracked(operation[1], operation[2])
                if operation[2]
                else cache.delete(operation[1])
            ),
            "group": lambda: cache.clear_tracked(operation[1]),
            "tag": lambda: cache.invalidate_tag(operation[1]),
            "clear": cache.clear,
        }
        calls[kind]()

    def queued(self) -> list[Operation]:
        """The operations waiting, oldest first (a copy)."""
        with self._lock:
            return list(self._queue.values())

    def stop(self) -> None:
        """Stop replaying (the tier's backend is closed); what is queued is dropped."""
        self._stopped = True
        self._wake.set()
