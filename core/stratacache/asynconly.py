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
from stratacache.backend import Backend
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
    """A backend whose operations are coroutines only; its synchronous ones refuse."""

    api: ClassVar[API] = "async"


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
