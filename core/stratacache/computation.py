"""The markers and types the backend contract shares: :data:`NO_VALUE`, :class:`Computation`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, final

if TYPE_CHECKING:
    from stratacache.backend import Backend

__all__ = ["NO_VALUE", "Computation", "NoValue", "Timeout"]

Timeout = int | float | timedelta | None
"""A timeout as the backends take it: seconds, a timedelta, ``None`` (default) or 0 (never)."""


@final
class NoValue:
    """The type of :data:`NO_VALUE`, the marker of a miss. It is falsy and a singleton."""

    _instance: ClassVar[NoValue | None] = None

    def __new__(cls) -> NoValue:  # noqa: D102 (documented on the class)
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = NoValue()
"""Returned by :meth:`Backend.lookup` on a miss, so that ``None`` can be a cached value."""


class Computation:
    """One caller's computation of a missing key under ``atomic_writes``.

    :meth:`Backend.start_computation` returns it. If :attr:`value` is :data:`NO_VALUE`, the
    caller computes the value and calls :meth:`commit` with it (or :meth:`abort` if the
    computation raised); otherwise :attr:`value` is the value another caller stored meanwhile
    and the caller uses it as it is. This default coordinates nothing: it is what a backend
    without cross-process coordination does.

    Attributes:
        value: The stored value, or :data:`NO_VALUE` when this caller must compute it.
        waited: Whether the caller waited for another caller's lock before getting here
            (counted in the function's ``lock_waits``).
        stored: Set by :meth:`commit`: whether this caller's value was written (counted in
            the ``sets`` statistics); False when another caller's value won or the outcome
            is unknown (a lost reply, an outage).
        result: What the commit returned, recorded when it went through the
            ``stratacache_set`` hook.
        tags: The tags the committed entry carries (``cached_for(tags=...)``), set by the
            engine before the commit; a backend records them in the commit itself, as
            ``Backend.set_tagged`` does.
    """

    tags: tuple[str, ...] = ()
    waited: bool = False
    stored: bool = False
    result: Any = NO_VALUE

    def __init__(
        self,
        backend: Backend,
        key: str,
        timeout: Timeout,
        group: str | None,
        value: Any = NO_VALUE,
        *,
        waited: bool = False,
    ) -> None:
        self.backend = backend
        self.key = key
        self.timeout = timeout
        self.group = group
        self.value: Any = value
        self.waited = waited

    def commit(self, value: Any) -> Any:
        """Store the computed ``value``; return the value every caller should get.

        A backend that lets several processes compute returns the value that won. A value that
        cannot be serialized raises :class:`~stratacache.SerializationError`, storing nothing.
        """
        backend, tags = self.backend, self.tags
        if tags:
            self.stored = bool(backend.set_tagged(self.key, value, self.timeout, self.group, tags))
        else:
            self.stored = bool(backend.set_tracked(self.key, value, self.timeout, self.group))
        return value

    def abort(self) -> None:
        """The computation raised or its value could not be stored: release what it holds."""

    async def acommit(self, value: Any) -> Any:
        """:meth:`commit`, awaited: through the backend's ``aset_tracked``.

        A subclass that overrides :meth:`commit` (a lock owner's commit script, a watched
        transaction) and not this has its ``commit`` run in a worker thread.
        """
        if type(self).commit is not Computation.commit:
            return await asyncio.to_thread(self.commit, value)
        backend, tags = self.backend, self.tags
        self.stored = bool(
            await (
                backend.aset_tagged(self.key, value, self.timeout, self.group, tags)
                if tags
                else backend.aset_tracked(self.key, value, self.timeout, self.group)
            )
        )
        return value

    async def aabort(self) -> None:
        """:meth:`abort`, awaited (a subclass's ``abort`` in a worker thread)."""
        if type(self).abort is not Computation.abort:
            await asyncio.to_thread(self.abort)
