"""Single flight for ``async def`` functions: concurrent awaiters of one key share one run.

The computation of a key is a task of its own, and every caller (the one that started it
too) awaits it through :func:`asyncio.shield`. So a cancelled caller stops waiting without
cancelling the computation the others wait for, and no caller is stranded: the task ends,
with a value or an exception, whoever is still waiting. If it raises, every caller that
waited for it gets that exception. A wait is bounded: past ``bound`` seconds a caller stops
waiting and raises :class:`TimeoutError`.

Flights belong to one event loop: each loop (a thread may run its own, ``asyncio.run`` makes
a new one each time) has a table of its own, dropped with the loop. A forked child starts
with none (its parent's loops do not run there).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from stratacache.backend import NO_VALUE

__all__ = ["AsyncFlights"]


class AsyncFlights:
    """The flights of one decorated ``async def`` function, by event loop and key."""

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Task[Any]]
        ] = weakref.WeakKeyDictionary()
        self._pid = os.getpid()

    def _table(self) -> dict[str, asyncio.Task[Any]]:
        if self._pid != os.getpid():  # forked: the parent's loops and tasks are not here
            self._tables, self._pid = weakref.WeakKeyDictionary(), os.getpid()
        loop = asyncio.get_running_loop()
        table = self._tables.get(loop)
        if table is None:
            table = self._tables[loop] = {}
        return table

    async def run(
        self,
        key: str,
        lead: Callable[[], Awaitable[Any]],
        reread: Callable[[], Any],
        on_wait: Callable[[], None],
        bound: float = 60.0,
    ) -> Any:
        """Return ``lead()``'s result, computed once for the concurrent awaiters of ``key``.

        ``reread`` is what a caller that joined another's flight reads once it succeeded
        (its own copy), or :data:`~stratacache.NO_VALUE` to take the shared object.

        Raises:
            BaseException: What ``lead()`` raised, in every caller that waited for it.
            TimeoutError: The computation took longer than ``bound`` seconds.
        """
        table = self._table()
        task = table.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(lead())
            table[key] = task
            task.add_done_callback(lambda done: _forget(table, key, done))
        else:
            on_wait()
        value = await asyncio.wait_for(asyncio.shield(task), bound)
        if joined:
            copy = reread()
            return value if copy is NO_VALUE else copy
        return value


def _forget(table: dict[str, asyncio.Task[Any]], key: str, task: asyncio.Task[Any]) -> None:
    if table.get(key) is task:
        del table[key]
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" if nobody waits
