"""One configuration of a stack: :class:`StackState`, its tiers and how functions pick them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stratacache import engine
from stratacache.coherence import InvalidationReceiver
from stratacache.tier import Tier

if TYPE_CHECKING:
    from stratacache.options import BackendOptions
    from stratacache.settings import CacheSettings

__all__ = ["StackState"]


class StackState:
    """One configuration of a stack: its tiers and the routes through them.

    A reconfiguration builds a new state and swaps it in at once: a call in progress
    finishes on the state it started with.
    """

    def __init__(
        self,
        settings: CacheSettings,
        tiers: tuple[Tier, ...],
        every: tuple[Tier, ...],
        plugin_options: Mapping[type[BackendOptions], BackendOptions] | None = None,
    ) -> None:
        self.settings = settings
        self.tiers = tiers
        self.every = every
        self.by_name = {t.name: t for t in every}
        self.counting = settings.cache_stats
        self.plugin_options = dict(plugin_options or {})
        serializing = tuple(t for t in tiers if t.cache.serializes)
        self.chain = serializing or tiers
        self.shared = self.chain[-1]
        self.local = next((t for t in self.chain if t.cache.in_process), self.chain[0])
        self.by_reference = next(t for t in every if not t.cache.serializes)
        # local_ram_cache_only: the in-process tiers above the deepest (the seed's "local"),
        # or a stack's only tier when it is in-process; never a tier outside the process.
        above = tuple(t for t in self.chain[:-1] if t.cache.in_process)
        self.local_chain: tuple[Tier, ...] | None = above or (
            self.chain[-1:] if self.chain[-1].cache.in_process else None
        )
        self.coherence: InvalidationReceiver | None = None
        """The receiver of other instances' changes, once the stack is installed."""
        self.threaded = tuple(t for t in every if not t.cache.in_process and not t.native_async)
        """The tiers async code reaches through worker threads (no native async API)."""
        self.warned_threads = False
        self.stack_route = engine.Route(
            self, self.chain, settings.cache_default_timeout, None, engine.UNCOUNTED
        )

    def names(self) -> str:
        """The tiers' names, the configured first, as messages list them."""
        implicit = [t.name for t in self.every if t not in self.tiers]
        shown = ", ".join(t.name for t in self.tiers)
        return f"{shown} (and the by-reference {', '.join(implicit)})" if implicit else shown

    def in_process_tiers(self, what: str) -> tuple[Tier, ...]:
        """Return the tiers of ``local_ram_cache_only`` functions.

        Raises:
            ValueError: The stack has no in-process tier that serializes (e.g. a
                ``CACHE_LAYERS`` list of FileSystemCache and Redis only).
        """
        if self.local_chain is None:
            raise ValueError(
                f"{what}: local_ram_cache_only=True needs an in-process tier that serializes,"
                f" and the stack has none ({', '.join(t.name for t in self.tiers)}); add"
                ' {"type": "SimpleCache"} at the top of CACHE_LAYERS, or drop'
                " local_ram_cache_only"
            )
        return self.local_chain

    def select(self, names: Sequence[str], what: str) -> tuple[Tier, ...]:
        """Return the tiers named ``names``, in stack order.

        Raises:
            ValueError: A name is not a tier of this stack.
        """
        unknown = [n for n in names if n not in self.by_name]
        if unknown:
            raise ValueError(
                f"{what}: tiers={list(names)!r} names {', '.join(map(repr, unknown))}, which"
                f" the stack does not have; its tiers: {self.names()}"
            )
        # Stack order, by-reference tiers first: they are in this process, and the implicit
        # one is not in the configured list.
        order = {t.name: (t.cache.serializes, i) for i, t in enumerate(self.every)}
        return tuple(
            sorted((self.by_name[n] for n in dict.fromkeys(names)), key=lambda t: order[t.name])
        )

    def check_selections(self, calls: list[Any]) -> None:
        """Check that the tiers each decorated function names (``calls``) exist here.

        Raises:
            ConfigurationError: Every function whose tiers this state lacks.
        """
        problems = []
        for call in calls:
            what = f"cached_for({call.group})"
            try:
                if call.tier_names is not None:
                    self.select(call.tier_names, what)
                elif call.local_only and not call.by_reference:
                    self.in_process_tiers(what)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            from stratacache.errors import ConfigurationError

            raise ConfigurationError(sorted(problems))
