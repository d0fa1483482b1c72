"""The layer stack: an ordered tuple of tiers, built from the settings or from code.

:data:`stratacache.cache` is a :class:`CacheStack`. Its tiers (``cache.tiers``) each hold a
backend (``.cache``) and its configuration (``.config``). The seed's monitoring attributes
stay: ``local_cache`` (the first in-process tier that serializes), ``local_cache_no_serializer``
(the by-reference tier of ``no_serialization`` functions) and ``shared_cache`` (the deepest
tier). Reads, fills and writes follow the engine's rules (:mod:`stratacache.engine`).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stratacache import engine
from stratacache.asyncstack import AsyncOperations
from stratacache.backend import NO_VALUE, Backend, Timeout
from stratacache.coherence import attach_receivers, attach_rechecks, detach, with_channel
from stratacache.driver import drive
from stratacache.errors import SerializationError
from stratacache.forksafe import renew_in_child
from stratacache.freshness import unwrapped
from stratacache.state import StackState
from stratacache.stats import BackendStats, StackStats, StatsSnapshot
from stratacache.tags import TagOperations
from stratacache.tier import Tier, TierConfig, TierSpecOf

if TYPE_CHECKING:
    from stratacache.engine import Route
    from stratacache.options import BackendOptions
    from stratacache.settings import CacheSettings

# The settings machinery (pydantic, pydantic-settings) is imported at the first configure,
# never at ``import stratacache``: a CLI call or a process that only decorates pays nothing.

__all__ = ["CacheStack", "StackState"]

logger = logging.getLogger("stratacache.stack")


class CacheStack(TagOperations, AsyncOperations):
    """A stack of cache tiers (``stratacache.cache`` is the process-wide one).

    Built by :meth:`configure` from settings, or by :meth:`from_tiers` from backends made in
    code; the first use of an unconfigured stack configures it from the environment.
    Statistics (:meth:`stats`) belong to the stack and survive reconfiguration.
    """

    def __init__(self) -> None:
        self._state: StackState | None = None
        self._lock = threading.RLock()
        renew_in_child(self, "_lock")
        self._stats = StackStats()
        self._closed_at_exit = False
        self._calls: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- configuration --------------------------------------------------------------------

    def configure(
        self, settings: CacheSettings | Mapping[str, Any] | None = None, /, **overrides: Any
    ) -> CacheSettings:
        """Build (or rebuild) the tiers and return the settings they were built from.

        Args:
            settings: A :class:`CacheSettings`, a Flask-style mapping of ``CACHE_*`` keys
                (the whole configuration), or ``None`` to read the environment.
            **overrides: Keys that override the environment when ``settings`` is ``None``.

        Raises:
            ConfigurationError: The settings are invalid (every problem listed).
            PluginError: A plugin is broken.
        """
        if overrides and settings is not None:
            raise TypeError("give either settings or keyword overrides to configure(), not both")
        from stratacache.settings import CacheSettings
        from stratacache.validation import settings_or_every_problem

        if settings is None or isinstance(settings, Mapping):
            resolved = settings_or_every_problem(settings, overrides)
        elif isinstance(settings, CacheSettings):
            resolved = settings
        else:
            raise TypeError(
                "configure() takes a mapping of CACHE_* keys (a dict, a Flask config), a"
                f" CacheSettings, or nothing to read the environment; got {settings!r:.80}."
                " Write configure({'CACHE_TYPE': 'SimpleCache'}) or configure(CACHE_TYPE=...)"
            )
        from stratacache.assembly import assemble
        from stratacache.pluginmanager import load_plugins

        manager = load_plugins()
        with self._lock:
            built = assemble(resolved, manager)
            state = StackState(resolved, built.tiers, built.every, built.plugin_options)
            state.check_selections(list(self._calls))
            self._install(state)
        self._warn_threaded(state)
        logger.debug("stratacache configured: %s", " > ".join(t.name for t in built.tiers))
        manager.hook.stratacache_configured(stack=self, settings=resolved)
        return resolved

    @staticmethod
    def validate(mapping: Mapping[str, Any]) -> CacheSettings:
        """Validate a Flask-style mapping as :meth:`configure` would, without configuring.

        The settings model and the assembly (backends, their keys) both run, so every
        problem is reported at once.

        Raises:
            ConfigurationError: Every problem of the configuration.
        """
        from stratacache.assembly import assemble
        from stratacache.pluginmanager import load_plugins
        from stratacache.validation import settings_or_every_problem

        settings = settings_or_every_problem(mapping, {})
        assemble(settings, load_plugins())
        return settings

    @classmethod
    def from_tiers(
        cls,
        tiers: Sequence[Backend | TierSpecOf],
        *,
        default_timeout: int = 300,
        stats: bool = True,
    ) -> CacheStack:
        """Build a stack from backends made in code, first to deepest.

        Args:
            tiers: Backend instances (named after their class) or :class:`TierSpecOf`
                (a backend with a name and a timeout cap). A by-reference tier
                (``local_no_serializer``) is added when none is given.
            default_timeout: Seconds an entry lives when no duration is given.
            stats: Whether the stack counts (``CACHE_STATS``).

        Raises:
            ValueError: No tier, or two tiers with one name.
        """
        from stratacache.assembly import BY_REFERENCE, tier_hooks
        from stratacache.pluginmanager import load_plugins
        from stratacache.settings import MappingSettings

        manager = load_plugins()
        hook, hooked = tier_hooks(manager)  # plugins see these tiers' operations too
        specs = [t if isinstance(t, TierSpecOf) else TierSpecOf(t) for t in tiers]
        if not specs:
            raise ValueError("from_tiers() needs at least one tier, e.g. [SimpleCache()]")
        settings = MappingSettings(cache_default_timeout=default_timeout, cache_stats=stats)
        built: list[Tier] = []
        for spec in specs:
            name = spec.name or type(spec.backend).__name__
            if any(t.name == name for t in built):
                raise ValueError(
                    f"from_tiers(): two tiers are named {name!r}; give each a name of its own,"
                    f" TierSpecOf(backend, name=...)"
                )
            config = TierConfig(
                type(spec.backend).__name__, type(spec.backend), {}, settings, spec.timeout
            )
            built.append(Tier(name, spec.backend, config, hook, hooked))
        every = tuple(built)
        if not any(not t.cache.serializes for t in built):
            from stratacache.registry import load_backend

            by_reference = load_backend("SimpleCacheNoSerializer")(default_timeout=default_timeout)
            config = TierConfig("SimpleCacheNoSerializer", type(by_reference), {}, settings, 0)
            every = (Tier(BY_REFERENCE, by_reference, config, hook, hooked), *every)
        stack = cls()
        stack._install(StackState(settings, tuple(built), every))
        manager.hook.stratacache_configured(stack=stack, settings=settings)
        return stack

    def _register(self, call: Any) -> None:
        """Remember a decorated function, so a reconfiguration checks the tiers it names."""
        self._calls.add(call)
        if self._state is not None:
            self._warn_threaded(self._state)
            if self._state.coherence is not None:
                self._state.coherence.watch(call.group)

    def _install(self, state: StackState) -> None:
        """Give the new tiers the stack's counters, then swap the state in."""
        stats = self._stats
        stats.enabled = state.counting
        stats.keep_only(tuple(t.name for t in state.every))
        for tier in state.every:
            if state.counting:
                tier.stats = stats.tier(tier.name)
                built = getattr(tier.cache, "stats", None)  # counted while it was built
                if isinstance(built, BackendStats) and built is not tier.stats:
                    tier.stats.add(built)
            tier.cache.stats = tier.stats
        groups = [call.group for call in list(self._calls)]
        state.coherence = attach_receivers(state.every, state.tiers, groups)
        attach_rechecks(state.every, state.coherence)
        replaced, self._state = self._state, state
        if replaced is not None:
            kept = {id(t.cache) for t in state.every}
            self._close_tiers(t for t in replaced.every if id(t.cache) not in kept)
        if not self._closed_at_exit:
            self._closed_at_exit = True
            atexit.register(_close_at_exit, weakref.ref(self))

    def _layers(self) -> StackState:
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    self.configure()
                state = self._state
                assert state is not None
        return state

    def route(
        self,
        timeout: float | None = None,
        *,
        group: str | None = None,
        on_unstorable: Callable[[SerializationError], None] | None = None,
    ) -> Route:
        """Return a route through the serializing tiers of the current state.

        For integrations that read through the engine (the Flask views): ``engine.read``,
        then ``engine.write`` of what they computed. A route belongs to one state: rebuild
        it when ``route.state is not stack._state``.

        Args:
            timeout: Seconds entries live; ``None`` for ``CACHE_DEFAULT_TIMEOUT``.
            group: The key-tracking group, counted as a function in :meth:`stats`.
            on_unstorable: Called when a tier cannot serialize a value.
        """
        state = self._layers()
        seconds = state.settings.cache_default_timeout if timeout is None else timeout
        tiers = state.chain
        counts = self._stats.function(group, tiers[0].name) if group else engine.UNCOUNTED
        return engine.Route(state, tiers, seconds, group, counts, on_unstorable=on_unstorable)

    # -- the monitoring attributes --------------------------------------------------------

    @property
    def settings(self) -> CacheSettings:
        """The settings the tiers were built from."""
        return self._layers().settings

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The configured tiers, first to deepest."""
        return self._layers().tiers

    def tier(self, name: str) -> Tier:
        """Return the tier named ``name`` (``"shared"``, ``"memory"``...).

        Raises:
            KeyError: The stack has no such tier (the message lists those it has).
        """
        state = self._layers()
        try:
            return state.by_name[name]
        except KeyError:
            raise KeyError(
                f"no tier {name!r}; the stack's tiers: {', '.join(state.by_name)}"
            ) from None

    @property
    def local_cache(self) -> Tier:
        """The first in-process tier that stores serialized copies."""
        return self._layers().local

    @property
    def local_cache_no_serializer(self) -> Tier:
        """The in-process tier that stores objects by reference (``no_serialization``)."""
        return self._layers().by_reference

    @property
    def shared_cache(self) -> Tier:
        """The deepest tier: the one every instance of the service shares."""
        return self._layers().shared

    def plugin_options(self, model: type[BackendOptions]) -> BackendOptions | None:
        """Return a hook plugin's validated options (see ``stratacache_options``), if any."""
        return self._layers().plugin_options.get(model)

    # -- operations across tiers ----------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key`` from the first tier that has it, else ``default``.

        A hit below the first tier fills the tiers above with its remaining lifetime.
        """
        value = engine.read(self._layers().stack_route, key)
        return default if value is NO_VALUE else unwrapped(value, default)

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` in every tier, deepest first; return the deepest tier's result.

        Args:
            key: The key.
            value: Any value the serializers accept (``None`` included).
            timeout: Seconds (or a timedelta); ``None`` for ``CACHE_DEFAULT_TIMEOUT``; 0 for
                no expiry. Each tier above the deepest keeps it at most its cap.
        """
        state = self._layers()
        seconds = state.shared.cache.timeout_seconds(timeout)
        route = engine.Route(state, state.chain, seconds, None, engine.UNCOUNTED)
        return engine.write(route, key, value, strict=True)

    def delete(self, key: str) -> bool:
        """Delete ``key`` from every tier; return whether any tier held it.

        A decorated function computing ``key`` right now will not write it back.
        """
        for call in list(self._calls):
            call.guard.invalidate(key)
        return self._remove_everywhere(key) > 0

    def _remove_everywhere(self, key: str, group: str | None = None) -> int:
        return engine.remove_everywhere(self._layers().every, key, group)

    def clear(self) -> bool:
        """Clear every tier; return True if all did.

        Each backend clears what it owns: Redis only the keys under its prefix,
        FileSystemCache every entry of its directory (give each application its own).
        """
        for call in list(self._calls):
            call.guard.invalidate_all()
        return drive(engine.clear_rule(self._layers().every))

    def clear_group(self, group: str) -> int:
        """Delete every entry tracked in ``group`` from every tier; return how many went."""
        return drive(engine.clear_group_rule(self._layers().every, group))

    def close(self) -> None:
        """Release what the backends hold (pools, handles); runs at interpreter exit too.

        A reconfiguration closes the backends it replaces the same way. A call already
        running on them finishes (a backend's ``close`` never breaks one).
        """
        state = self._state
        if state is not None:
            self._close_tiers(state.every)

    @staticmethod
    def _close_tiers(tiers: Iterable[Tier]) -> None:
        detach(tiers := tuple(tiers))  # a closed backend neither announces nor listens
        for tier in tiers:
            if tier.recovery is not None:
                tier.recovery.stop()
            try:
                tier.cache.close()
            except Exception:
                logger.warning("closing tier %r failed", tier.name, exc_info=True)

    # -- statistics -----------------------------------------------------------------------

    def stats(self) -> StatsSnapshot:
        """Return the stack's statistics: a plain, JSON-serializable dict.

        ``{"enabled": ..., "layers": {tier name: {...}}, "functions": {"module.qualname":
        {...}}}``: per tier ``hits``, ``misses``, ``sets``, ``deletes``, ``errors``,
        ``deserialization_failures``, ``lock_waits`` and the auto-recovery counters
        (``recovery_queued``, ``recovery_replayed``, ``recovery_dropped``,
        ``recovery_rechecked``: see :mod:`stratacache.recovery`); per decorated function
        ``local_hits`` (its first tier), ``shared_hits`` (the tiers below), ``misses``,
        ``sets``, ``deletes``, ``errors``, ``computations``, ``compute_errors``,
        ``compute_seconds`` and ``lock_waits`` (see :mod:`stratacache.stats` for each).

        The counts are those of this process since the stack was created or
        :meth:`reset_stats` was called; :meth:`configure` keeps them (a tier's counts carry
        on across a change of its backend). With ``CACHE_STATS=false`` nothing is counted
        and ``enabled`` is false; ``invalidation`` has the coherence channel's counts (see
        :mod:`stratacache.coherence`). Reading them never configures the stack.
        """
        return with_channel(self._stats.snapshot(), getattr(self._state, "coherence", None))

    def reset_stats(self) -> None:
        """Set every counter of :meth:`stats` back to zero."""
        self._stats.reset()

    def __repr__(self) -> str:
        state = self._state
        if state is None:
            return "<CacheStack (not configured yet)>"
        tiers = " > ".join(f"{t.name}={t.cache!r}" for t in state.tiers)
        return f"<CacheStack {tiers}>"


def _close_at_exit(ref: weakref.ref[CacheStack]) -> None:
    stack = ref()
    if stack is not None:
        stack.close()
