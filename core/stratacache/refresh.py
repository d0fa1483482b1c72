"""Background work of functions with freshness options: refreshes and timed computations.

A stack has one :class:`Refresher` per process (made at first use, remade when
``CACHE_REFRESH_WORKERS`` changes or after ``fork()``): a thread pool of that many workers.

* A **refresh** of a key is started at most once at a time per process: a key whose refresh
  is running is not started again, and when ``CACHE_REFRESH_WORKERS`` refreshes already
  run, a new one is dropped (counted in ``refreshes_dropped``; the next stale read asks
  again). So refreshes never pile up, and a caller never waits for one.
* A **timed computation** (``soft_timeout``/``hard_timeout``) runs on the same pool, so its
  caller can stop waiting while it finishes and stores its result.

Under asyncio a refresh is a task of the running loop instead (:class:`AsyncRefresher`),
with the same rules: one per key, at most ``CACHE_REFRESH_WORKERS`` at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from stratacache.stats import FunctionStats

__all__ = ["AsyncRefresher", "Refresher", "refresher"]

logger = logging.getLogger("stratacache.refresh")


class Refresher:
    """The background workers of one stack in one process.

    Args:
        workers: The pool's size, and the most refreshes running at once.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="stratacache-refresh")
        self._running: set[tuple[str | None, str]] = set()
        self._lock = threading.Lock()
        self.pid = os.getpid()

    def refresh(
        self, name: tuple[str | None, str], job: Callable[[], Any], counts: FunctionStats
    ) -> bool:
        """Start ``job``, the refresh of ``name`` (group, key), unless it runs or the pool is full.

        Returns whether it was started.
        """
        with self._lock:
            if name in self._running:
                return False
            if len(self._running) >= self.workers:
                counts.refreshes_dropped += 1
                return False
            self._running.add(name)

        def run() -> None:
            try:
                job()
            except Exception:  # a failed refresh: the stale value stays, the next one retries
                logger.warning("background refresh of %r failed", name[1], exc_info=True)
            finally:
                with self._lock:
                    self._running.discard(name)

        self._pool.submit(run)
        return True

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        """Run a timed computation ``job`` on the pool; its caller waits as long as it wants."""
        future = self._pool.submit(job)
        future.add_done_callback(_log_failure)
        return future

    def shutdown(self) -> None:
        """Let the running jobs finish; start no more."""
        self._pool.shutdown(wait=False)


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("a timed computation failed", exc_info=future.exception())


_REFRESHERS: weakref.WeakKeyDictionary[Any, Refresher] = weakref.WeakKeyDictionary()
_REFRESHERS_LOCK = threading.Lock()


def refresher(stack: Any, workers: int) -> Refresher:
    """Return the :class:`Refresher` of ``stack`` in this process, with ``workers`` workers."""
    found = _REFRESHERS.get(stack)
    if found is not None and found.workers == workers and found.pid == os.getpid():
        return found
    with _REFRESHERS_LOCK:
        found = _REFRESHERS.get(stack)
        if found is None or found.workers != workers or found.pid != os.getpid():
            if found is not None and found.pid == os.getpid():
                found.shutdown()
            found = _REFRESHERS[stack] = Refresher(workers)
        return found


class AsyncRefresher:
    """The refresh tasks of one function, by event loop: one per key, a bounded number."""

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str | None, str], asyncio.Task[Any]]
        ] = weakref.WeakKeyDictionary()
        self._background: set[asyncio.Task[Any]] = set()

    def _table(self) -> dict[tuple[str | None, str], asyncio.Task[Any]]:
        loop = asyncio.get_running_loop()
        table = self._tables.get(loop)
        if table is None:
            table = self._tables[loop] = {}
        return table

    def refresh(
        self,
        name: tuple[str | None, str],
        job: Callable[[], Awaitable[Any]],
        counts: FunctionStats,
        workers: int,
    ) -> bool:
        """Start ``job()`` as a task, unless ``name`` is refreshing or ``workers`` tasks run."""
        table = self._table()
        if name in table:
            return False
        if len(table) >= workers:
            counts.refreshes_dropped += 1
            return False
        task = asyncio.ensure_future(job())
        table[name] = task

        def done(finished: asyncio.Task[Any]) -> None:
            if table.get(name) is finished:
                del table[name]
            if not finished.cancelled() and finished.exception() is not None:
                logger.warning(
                    "background refresh of %r failed", name[1], exc_info=finished.exception()
                )

        task.add_done_callback(done)
        return True

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a timed computation's task until it ends (its caller may stop waiting)."""
        self._background.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._background.discard(finished)
            if not finished.cancelled():
                finished.exception()  # retrieved: the caller saw it, or gave up waiting

        task.add_done_callback(done)
