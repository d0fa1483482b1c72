"""File cache: stratacache's FileSystemCache ``get`` / ``set`` against cachelib and diskcache.

Each library writes into directories of its own. The value is a small dict, kept 300 s.

* get: the same key, read again and again (the file is in the page cache), default options.
* set: a fresh key per call, as the write after a miss is. The entry-count threshold of
  FileSystemCache and cachelib is raised to 1,000,000, so this measures the write itself
  with each library's bookkeeping (cachelib reads and rewrites a count file), no pruning.
  This is the figure the target is checked on.
* set at the default threshold (500), the directories filled to it first: every write
  also makes room, the way each library prunes (for information; fewer calls, as
  cachelib's pruning reads every entry's header on each write).

diskcache has no entry-count threshold (it bounds the size in bytes); it is in every table.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachelib
import diskcache
from harness import measure
from model import CaseResult, Check, Context, Table, check, make_table

from stratacache import load_backend

CASES = ("file_cache",)

VALUE = {"USD": 1.08, "GBP": 0.85, "JPY": 161.2}
STRATACACHE = "stratacache FileSystemCache"
CACHELIB = "cachelib FileSystemCache"
DISKCACHE = "diskcache.Cache"
NO_PRUNING = 1_000_000
DEFAULT_THRESHOLD = 500


class Caches:
    """One instance of each file cache, each in its own directory under ``directory``."""

    def __init__(self, directory: Path, threshold: int) -> None:
        file_system_cache = load_backend("FileSystemCache")
        self.ours = file_system_cache(
            cache_dir=directory / "stratacache", threshold=threshold, default_timeout=300
        )
        self.theirs = cachelib.FileSystemCache(
            str(directory / "cachelib"), threshold=threshold, default_timeout=300
        )
        self.disk = diskcache.Cache(str(directory / "diskcache"))

    def getters(self, key: str) -> dict[str, Callable[[], Any]]:
        """A ``get`` of ``key`` per library."""
        return {
            STRATACACHE: functools.partial(self.ours.get, key),
            CACHELIB: functools.partial(self.theirs.get, key),
            DISKCACHE: functools.partial(self.disk.get, key),
        }

    def setters(self, prefix: str) -> dict[str, Callable[[], Any]]:
        """A ``set`` per library, of a fresh key (``prefix`` + a counter) on each call."""
        return {
            STRATACACHE: _writer(prefix, self.ours.set, timeout=300),
            CACHELIB: _writer(prefix, self.theirs.set, timeout=300),
            DISKCACHE: _writer(prefix, self.disk.set, expire=300),
        }

    def close(self) -> None:
        """Close diskcache's database."""
        self.disk.close()


def _writer(prefix: str, store: Callable[..., Any], **options: Any) -> Callable[[], Any]:
    keys = (f"{prefix}:{n}" for n in itertools.count())
    return lambda: store(next(keys), VALUE, **options)


def measure_get(caches: Caches, batches: int, calls: int) -> Table:
    """Repeated ``get`` of one entry."""
    for store in caches.setters("rates").values():
        store()
    getters = caches.getters("rates:0")
    for getter in getters.values():
        assert getter() == VALUE
    return make_table("file cache get", measure(getters, batches, calls), CACHELIB)


def measure_set(caches: Caches, title: str, batches: int, calls: int, fill: int = 0) -> Table:
    """``set`` of fresh keys, after writing ``fill`` entries (not timed)."""
    for store in caches.setters("fill").values():
        for _ in range(fill):
            store()
    samples = measure(caches.setters("order"), batches, calls)
    return make_table(title, samples, CACHELIB)


def checks(get: Table, set_: Table) -> list[Check]:
    """The three targets: get against cachelib and diskcache, set against cachelib."""
    return [
        check(
            "file_cache",
            get,
            STRATACACHE,
            "get <= cachelib",
            short="get vs cachelib",
            at_most=1.0,
            label=f"{STRATACACHE} get",
        ),
        check(
            "file_cache",
            get,
            STRATACACHE,
            "get <= 1.5x diskcache",
            short="get vs diskcache",
            at_most=1.5,
            anchor=DISKCACHE,
            label=f"{STRATACACHE} get",
        ),
        check(
            "file_cache",
            set_,
            STRATACACHE,
            "set >= 3x faster than cachelib (ratio <= 0.33x)",
            short="set vs cachelib",
            at_most=1 / 3,
            label=f"{STRATACACHE} set",
        ),
    ]


def run(ctx: Context) -> list[CaseResult]:
    """Measure get, set, and set at the default threshold, of the three file caches."""
    batches, calls = ctx.pick((100, 60), (3, 10))
    roomy = Caches(ctx.workdir / "files-roomy", NO_PRUNING)
    full = Caches(ctx.workdir / "files-full", DEFAULT_THRESHOLD)
    try:
        get = measure_get(roomy, batches, calls)
        set_ = measure_set(roomy, "file cache set (fresh keys, no pruning)", batches, calls)
        pruning = measure_set(
            full,
            f"file cache set at the default threshold ({DEFAULT_THRESHOLD} entries, pruning)",
            *ctx.pick((10, 20), (2, 5)),
            fill=DEFAULT_THRESHOLD,
        )
    finally:
        roomy.close()
        full.close()
    return [CaseResult("file_cache", [get, set_, pruning], checks(get, set_))]
