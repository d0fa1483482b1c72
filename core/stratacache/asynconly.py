"""The base of a backend that serves ``async def`` code only (``api = "async"``).

Its subclass implements the ``a``-methods of :mod:`stratacache.asyncbackend`
(:meth:`~stratacache.asyncbackend.AsyncMethods.alookup`, ``aset_tracked``, ``adelete``...);
every synchronous operation raises :class:`~stratacache.CacheError` naming itself, so a
synchronous function on a stack with such a tier fails loudly on its first call instead of
missing silently (cachelib's defaults answer ``None``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from stratacache.asyncbackend import API
from stratacache.backend import Backend, Computation, Timeout
from stratacache.errors import CacheError

__all__ = ["AsyncOnlyBackend"]

_SYNC_OPERATIONS = (
    "get",
    "set",
    "add",
    "delete",
    "has",
    "clear",
    "get_many",
    "set_many",
    "delete_many",
    "get_dict",
    "inc",
    "dec",
    "lookup",
    "lookup_entry",
    "set_tracked",
    "delete_tracked",
    "clear_tracked",
    "start_computation",
)


class AsyncOnlyBackend(Backend):
    """A backend whose operations are coroutines only; its synchronous ones refuse.

    A subclass implements :meth:`alookup`, :meth:`aset_tracked` (recording ``key`` in
    ``group`` when one is given), :meth:`adelete`, :meth:`aclear_tracked` (for
    ``f.clear_cache()``) and :meth:`aclear`; :meth:`alookup_entry` (remaining lifetime
    unknown), :meth:`adelete_tracked` and :meth:`astart_computation` (no coordination across
    processes) have defaults on top of them.
    """

    api: ClassVar[API] = "async"

    async def alookup(self, key: str) -> Any:
        """The value of ``key``, or ``NO_VALUE`` on a miss: implement it."""
        raise self._missing("alookup")

    async def alookup_entry(self, key: str) -> tuple[Any, float | None]:
        """:meth:`alookup`, with the remaining lifetime unknown (``None``)."""
        return await self.alookup(key), None

    async def aset_tracked(
        self, key: str, value: Any, timeout: Timeout = None, group: str | None = None
    ) -> bool:
        """Store ``value`` and record ``key`` in ``group``: implement it."""
        raise self._missing("aset_tracked")

    async def adelete(self, key: str) -> bool:
        """Delete ``key``; whether it was there: implement it."""
        raise self._missing("adelete")

    async def adelete_tracked(self, key: str, group: str) -> bool:
        """:meth:`adelete` (the group's record is the subclass's to prune)."""
        return await self.adelete(key)

    async def aclear_tracked(self, group: str) -> int:
        """Delete every entry recorded in ``group``; how many went: implement it."""
        raise self._missing("aclear_tracked", "f.clear_cache()")

    async def aclear(self) -> bool:
        """Delete every entry: implement it."""
        raise self._missing("aclear", "cache.clear()")

    async def astart_computation(
        self, key: str, timeout: Timeout, group: str | None, mode: str
    ) -> Computation:
        """No coordination across processes (single flight still runs once per process)."""
        return Computation(self, key, timeout, group)

    def _missing(self, name: str, what: str = "") -> CacheError:
        needed = f" ({what} needs it)" if what else ""
        return CacheError(
            f"{type(self).__name__} is an AsyncOnlyBackend without {name}(){needed}:"
            f" implement {name} in the class"
        )


def _refusing(name: str) -> Callable[..., Any]:
    def refuse(self: Backend, *args: Any, **kwargs: Any) -> Any:
        raise CacheError(
            f"{type(self).__name__}.{name}() was called from synchronous code, but the backend"
            " serves async code only (api='async'): call it from an async def function"
            " (await cache.aget(...)), or give synchronous functions a tier that serves them"
            " (cached_for(..., tiers=[...]))"
        )

    refuse.__name__ = name
    refuse.__doc__ = f"Refused: ``{name}`` is synchronous, and this backend serves async code."
    return refuse


for _name in _SYNC_OPERATIONS:
    setattr(AsyncOnlyBackend, _name, _refusing(_name))
