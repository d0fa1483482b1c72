"""A tier: one backend of the stack, with its name, its cap, and the only path to it.

Every access the stack makes to a backend goes through its :class:`Tier`: reads, writes,
deletes, clears, group clears and ``atomic_writes`` commits. When a hook plugin implements
an operation hook, the tier calls the hook (with the tier's name as ``layer`` and the
function's ``group``), so plugins see every operation; otherwise it calls the backend
directly, and the hot path makes no pluggy call.
"""

from __future__ import annotations

import builtins
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stratacache.backend import NO_VALUE, Backend, Computation, Timeout
from stratacache.freshness import companion_key
from stratacache.recovery import ALL, Recovery
from stratacache.stats import LayerStats
from stratacache.tierasync import AwaitedTier

if TYPE_CHECKING:
    import pluggy

    from stratacache.settings import CacheSettings

__all__ = ["Tier", "TierConfig", "TierSpecOf", "bounded"]


@dataclass(frozen=True)
class TierConfig:
    """The validated configuration of one tier (``tier.config``, the seed's ``.config``).

    Attributes:
        type: The backend as configured (an entry-point name or a dotted path).
        backend: The backend class it resolved to.
        options: The arguments the backend was built from (secrets masked).
        settings: The whole settings object the stack was built from.
        timeout: The tier's cap in seconds (0 = none): copies of deeper entries live at most
            this long here.
    """

    type: str
    backend: builtins.type[Backend]
    options: Mapping[str, Any]
    settings: CacheSettings = field(repr=False)
    timeout: float = 0


@dataclass(frozen=True)
class TierSpecOf:
    """A tier given in code to :meth:`CacheStack.from_tiers <stratacache.CacheStack.from_tiers>`.

    Attributes:
        backend: The backend instance (a ready Redis client inside it, a custom backend...).
        name: The tier's name (default: the backend's class name).
        timeout: The tier's cap in seconds (0 = none).
    """

    backend: Backend
    name: str | None = None
    timeout: float = 0


def bounded(seconds: float, cap: float) -> float:
    """Return ``seconds`` bounded by ``cap``, where 0 means unbounded for both (never expire)."""
    if cap == 0:
        return seconds
    if seconds == 0:
        return cap
    return min(seconds, cap)


class Tier(AwaitedTier):
    """One tier of a stack: a backend and the operations the engine calls on it.

    Attributes:
        name: The tier's name (``"local"``, ``"shared"``, or a ``CACHE_LAYERS`` name).
        cache: The backend instance.
        config: Its :class:`TierConfig`.
        cap: Its timeout cap in seconds (0 = none).
        stats: Its :class:`~stratacache.stats.LayerStats` (the stack's, or a throwaway one
            when ``CACHE_STATS`` is off).
        fast_lookup: ``cache.compiled_lookup()`` when no plugin implements
            ``stratacache_get`` and the tier has no :attr:`recovery`, else ``None``: the hot
            path calls it directly.
        recovery: The :class:`~stratacache.recovery.Recovery` queue of a backend that
            degrades (``Backend.degrades``), unless ``CACHE_RECOVERY_MAX`` is 0; else ``None``.
    """

    __slots__ = (
        "_clear",
        "_clear_group",
        "_delete",
        "_get",
        "_set",
        "cache",
        "cap",
        "config",
        "fast_lookup",
        "name",
        "native_async",
        "recovery",
        "stats",
    )

    def __init__(
        self,
        name: str,
        cache: Backend,
        config: TierConfig,
        hook: pluggy.HookRelay | None = None,
        hooked: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.cache = cache
        self.config = config
        self.cap = config.timeout
        self.stats = LayerStats()

        def relay(name: str) -> Any:
            return getattr(hook, name) if hook is not None and name in hooked else None

        # Each operation goes through its hook only when a plugin implements that hook: a
        # plugin observing writes leaves reads on the backend's own bound method.
        self._get = relay("stratacache_get")
        self._set = relay("stratacache_set")
        self._delete = relay("stratacache_delete")
        self._clear_group = relay("stratacache_clear_group")
        self._clear = relay("stratacache_clear")
        limit = getattr(config.settings, "cache_recovery_max", 0) if cache.degrades else 0
        self.recovery = Recovery(self, limit) if limit else None
        direct = self._get is None and self.recovery is None
        self.fast_lookup: Callable[[str], Any] | None = cache.compiled_lookup() if direct else None
        self.native_async = cache.api != "sync" and not self.hooked
        """Whether async code awaits the backend's ``a``-methods (else: worker threads).

        Not through a plugin's operation hook: hooks are synchronous.
        """

    @property
    def hooked(self) -> bool:
        """Whether some operation of this tier goes through a plugin hook."""
        return any(
            h is not None
            for h in (self._get, self._set, self._delete, self._clear_group, self._clear)
        )

    # -- reads ----------------------------------------------------------------------------

    def lookup(self, key: str, group: str | None = None) -> Any:
        """Return the value of ``key`` or :data:`~stratacache.NO_VALUE`."""
        recovery = self.recovery
        if recovery is not None and recovery.pending:
            return recovery.read(key, group, lambda: self._lookup(key, group), NO_VALUE)
        return self._lookup(key, group)

    def _lookup(self, key: str, group: str | None) -> Any:
        get = self._get
        if get is None:
            return self.cache.lookup(key)
        return get(layer=self.name, backend=self.cache, key=key, group=group, remaining=None)

    def lookup_entry(self, key: str, group: str | None = None) -> tuple[Any, float | None]:
        """Return the value of ``key`` and its remaining lifetime (see ``Backend.lookup_entry``).

        Through the read hook, a plugin's answer has no known lifetime (``None``).
        """
        recovery = self.recovery
        if recovery is not None and recovery.pending:
            read = lambda: self._lookup_entry(key, group)  # noqa: E731
            return recovery.read(key, group, read, (NO_VALUE, None))  # type: ignore[no-any-return]
        return self._lookup_entry(key, group)

    def _lookup_entry(self, key: str, group: str | None) -> tuple[Any, float | None]:
        get = self._get
        if get is None:
            return self.cache.lookup_entry(key)
        found: list[float | None] = [None]
        value = get(layer=self.name, backend=self.cache, key=key, group=group, remaining=found)
        return value, found[0]

    # -- writes ---------------------------------------------------------------------------

    def store(
        self,
        key: str,
        value: Any,
        timeout: Timeout,
        group: str | None,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """Write ``value`` under ``key`` for ``timeout`` seconds, tracked in ``group``.

        With ``tags``, the backend stores it and records it under each
        (``Backend.set_tagged``) directly: a plugin's write hook, which knows no tags,
        does not see tagged writes (a write it changed could not be found by its tags).
        """
        set_ = self._set
        if tags:
            stored = self.cache.set_tagged(key, value, timeout, group, tags)
        elif set_ is None:
            stored = self.cache.set_tracked(key, value, timeout, group)
        else:
            stored = bool(
                set_(
                    layer=self.name,
                    backend=self.cache,
                    key=key,
                    value=value,
                    timeout=timeout,
                    group=group,
                    computation=None,
                )
            )
        if stored:
            self.stats.sets += 1
            if self.recovery is not None and self.recovery.pending:
                self.recovery.written(key)
        return stored

    def start_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """Begin an ``atomic_writes`` computation of ``key`` (see ``Backend.start_computation``)."""
        return self.cache.start_computation(key, timeout, group, mode)

    def commit(self, computation: Computation, value: Any) -> Any:
        """Commit ``value`` for ``computation``; return the value every caller should get.

        A plugin sees the commit as a write (``stratacache_set`` with ``computation``),
        unless the entry carries tags (see :meth:`store`).
        """
        set_ = self._set
        if set_ is None or computation.tags:
            result = computation.commit(value)
        else:
            set_(
                layer=self.name,
                backend=self.cache,
                key=computation.key,
                value=value,
                timeout=computation.timeout,
                group=computation.group,
                computation=computation,
            )
            result = computation.result
            if result is NO_VALUE:  # a plugin answered in place of the commit
                result = value
        if computation.stored:
            self.stats.sets += 1
            if self.recovery is not None and self.recovery.pending:
                self.recovery.written(computation.key)
        return result

    def acquire_refresh(self, key: str) -> str | None:
        """Claim the background refresh of ``key`` (see ``Backend.acquire_refresh``)."""
        return self.cache.acquire_refresh(key)

    def release_refresh(self, key: str, lease: str) -> None:
        """Give back a refresh claimed with :meth:`acquire_refresh`."""
        self.cache.release_refresh(key, lease)

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (a rule polling this tier for another caller's value)."""
        time.sleep(seconds)

    def abort(self, computation: Computation) -> None:
        """Give up ``computation`` (releasing its lock, if it holds one): nothing is stored."""
        computation.abort()

    # -- deletes --------------------------------------------------------------------------

    def remove(self, key: str, group: str | None = None) -> bool:
        """Delete ``key``, and its member of ``group``'s tracking; return whether an entry went."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        delete = self._delete
        if delete is None:
            cache = self.cache
            removed = bool(cache.delete(key) if group is None else cache.delete_tracked(key, group))
        else:
            removed = bool(delete(layer=self.name, backend=self.cache, key=key, group=group))
        if removed:
            self.stats.deletes += 1
        if recovery is not None:
            recovery.after(mark, ("key", key, group or ""))
        return removed

    def drop_envelope(self, key: str) -> bool:
        """Delete the envelope kept beside ``key`` in an in-process tier (no hook, no count)."""
        return bool(self.cache.delete(companion_key(key)))

    def clear_group(self, group: str) -> int:
        """Delete every entry tracked in ``group``; return how many went."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        clear_group = self._clear_group
        if clear_group is None:
            removed = self.cache.clear_tracked(group)
        else:
            removed = int(clear_group(layer=self.name, backend=self.cache, group=group) or 0)
        self.stats.deletes += removed
        if recovery is not None:
            recovery.after(mark, ("group", group))
        return removed

    def invalidate_tag(self, tag: str) -> int:
        """Delete every entry carrying ``tag``; return how many went."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        removed = int(self.cache.invalidate_tag(tag))
        self.stats.deletes += removed
        if recovery is not None:
            recovery.after(mark, ("tag", tag))
        return removed

    def clear(self) -> bool:
        """Delete every entry the backend owns; return whether it did."""
        recovery = self.recovery
        mark = 0 if recovery is None else recovery.mark()
        clear = self._clear
        if clear is None:
            cleared = bool(self.cache.clear())
        else:
            cleared = bool(clear(layer=self.name, backend=self.cache))
        if recovery is not None:
            recovery.after(mark, ALL)
        return cleared

    # -- timeouts -------------------------------------------------------------------------

    def fill_timeout(self, remaining: float | None, fallback: float) -> float | None:
        """Return how long a copy of a deeper entry lives here, or ``None`` not to copy it.

        ``remaining`` is the entry's remaining life below (``inf``: never expires;
        ``None``: unknown, so ``fallback``, the function's timeout for this tier, applies).
        The copy never outlives the entry below, and never this tier's cap.
        """
        if remaining is None:
            return fallback
        if remaining <= 0:
            return None
        if math.isinf(remaining):
            return fallback
        return bounded(remaining, fallback)

    def __repr__(self) -> str:
        return f"<Tier {self.name}: {self.cache!r}>"
