"""Growth: hit time as the cache fills, and ``clear_cache()`` time as a function's keys grow.

* Local hit with 1e3, 1e5 and (full mode only) 1e6 entries in SimpleCache, shared layer off,
  with cachetools caches of the same sizes in the same group for reference.
* Shared hit with as many entries in Redis (each size in its own database, local layer off).

Each hit is on a key drawn at random among the entries (a random cycle of up to 100,000 of
them), so a large cache is not measured on a few entries hot in the CPU caches: the figure
then includes the cost of the memory hierarchy, which grows with the working set. The local
hits are also measured on 1,000 hot keys of each cache (the same working set at every
size), which isolates the cost of the cache's own structures.
* ``clear_cache()`` of a function with 1e3, 1e4 and 1e5 keys in Redis, in time per key. The
  entries are written once, by tracked writes of the library, into a backup database, and
  copied (pipelined ``COPY``) into the measured database before each clear. ``INFO
  commandstats``, reset before each clear and read after it, counts its commands: never a
  ``KEYS``.

Targets: hit time flat (each size within 1.5x of the 1e3 figure, for both access patterns);
clear time linear (time per key within 1.5x of the 1e3 figure); no ``KEYS`` call.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import cachetools
from harness import measure, measure_rounds
from model import CaseResult, Check, Context, Table, check, count_check, make_table

from stratacache import CacheStack, cached_for
from stratacache.keys import function_name
from tests.redis_server import RedisServer

CASES = ("growth",)
CACHETOOLS = "cachetools.cached(TTLCache)"

SAMPLE = 100_000
"""Most distinct keys the hits cycle through."""
HOT = 1_000
"""Distinct keys the hot-key hits cycle through."""
CHUNK = 10_000
"""Entries per pipelined write when filling Redis."""
SHARED_DB, BACKUP_DB, CLEAR_DB = 1, 4, 8
"""First database of the shared-hit sizes, of the clear backups, of the cleared copies."""


def entry(number: int) -> dict[str, Any]:
    """The cached function: a small dict per number."""
    return {"id": number, "name": f"item {number}", "price": 9.99}


def label(entries: int) -> str:
    """How a size is named in the tables."""
    return f"{entries:,} entries"


def _hits(func: Callable[[int], Any], entries: int, keys: int = SAMPLE) -> Callable[[], Any]:
    numbers = itertools.cycle(random.Random(entries).sample(range(entries), min(entries, keys)))
    return lambda: func(next(numbers))


def hot(entries: int) -> str:
    """How a size is named when its hits cycle through :data:`HOT` keys."""
    return f"{label(entries)}, {HOT:,} hot keys"


def _stack(config: dict[str, Any]) -> CacheStack:
    stack = CacheStack()
    stack.configure(config)
    return stack


def local_hits(sizes: Sequence[int], batches: int, calls: int) -> tuple[Table, Table, Table]:
    """Local hits in SimpleCaches filled with each of ``sizes`` entries, side by side.

    ``cachetools.cached(TTLCache)`` caches of the same sizes run in the same group, for
    reference: how much of the growth any in-process cache shows on this machine.

    Returns:
        The stratacache tables (keys spread over the cache, hot keys) and the cachetools one.
    """
    cases: dict[str, Callable[[], Any]] = {}
    for entries in sizes:
        stack = _stack(
            {
                "CACHE_TYPE": "NullCache",
                "LOCALCACHE_TYPE": "SimpleCache",
                "LOCALCACHE_THRESHOLD": entries,
                "LOCALCACHE_DEFAULT_TIMEOUT": 3600,
            }
        )
        func = cached_for(hours=1, stack=stack)(entry)
        reference = cachetools.TTLCache[Any, Any](maxsize=entries, ttl=3600)
        anchor = cachetools.cached(reference)(entry)
        for number in range(entries):
            func(number)
            anchor(number)
        assert len(stack.local_cache.cache) == len(reference) == entries  # type: ignore[arg-type]
        cases[label(entries)] = _hits(func, entries)
        if entries > HOT:
            cases[hot(entries)] = _hits(func, entries, HOT)
        cases[f"{CACHETOOLS}, {label(entries)}"] = _hits(anchor, entries)
    samples = measure(cases, batches, calls)
    first = label(sizes[0])
    return (
        make_table("local hit by entries", samples, first, names=[label(n) for n in sizes]),
        make_table(
            f"local hit by entries, the hits cycling through {HOT:,} hot keys",
            samples,
            first,
            names=[first, *(hot(n) for n in sizes if n > HOT)],
        ),
        make_table(
            f"{CACHETOOLS} hit by entries (for reference)",
            samples,
            f"{CACHETOOLS}, {first}",
            names=[f"{CACHETOOLS}, {label(n)}" for n in sizes],
        ),
    )


def shared_hits(server: RedisServer, sizes: Sequence[int], batches: int, calls: int) -> Table:
    """Shared hits in Redis databases holding each of ``sizes`` entries, side by side."""
    cases: dict[str, Callable[[], Any]] = {}
    for db, entries in enumerate(sizes, start=SHARED_DB):
        stack = _stack(
            {
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_URL": f"redis://127.0.0.1:{server.port}/{db}",
                "LOCALCACHE_TYPE": "NullCache",
            }
        )
        func = cached_for(hours=1, stack=stack)(entry)
        backend = stack.shared_cache.cache
        for start in range(0, entries, CHUNK):
            chunk = range(start, min(entries, start + CHUNK))
            backend.set_many({func.cache_key(n): entry(n) for n in chunk}, timeout=3600)
        assert server.client(db=db).dbsize() == entries
        cases[label(entries)] = _hits(func, entries)
    table = make_table("shared hit by entries", measure(cases, batches, calls), label(sizes[0]))
    for db, entries in enumerate(sizes, start=SHARED_DB):
        client = server.client(db=db)
        assert client.dbsize() == entries  # every call was a hit: nothing was written
        client.flushdb()
    return table


def _filled_backup(server: RedisServer, db: int, entries: int) -> list[bytes]:
    """Write ``entries`` tracked entries of :func:`entry` into ``db``; return every key."""
    stack = _stack(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": f"redis://127.0.0.1:{server.port}/{db}",
            "CACHE_KEY_PREFIX": "clear_",
            "LOCALCACHE_TYPE": "NullCache",
        }
    )
    func = cached_for(hours=1, stack=stack)(entry)
    layer, group = stack.shared_cache, function_name(entry)
    for number in range(entries):
        layer.store(func.cache_key(number), entry(number), 3600, group)
    return list(server.client(db=db).scan_iter(count=1000))


class ClearCase:
    """One size of the clear benchmark: a function's tracked entries, cleared again and again.

    The entries are written once into ``backup_db``; each call copies them into
    ``target_db`` and times the function's ``clear_cache()`` there.
    """

    def __init__(self, server: RedisServer, index: int, entries: int, commands: Counter[str]):
        self.server, self.entries, self.commands = server, entries, commands
        self.backup_db, self.target_db = BACKUP_DB + index, CLEAR_DB + index
        self.names = _filled_backup(server, self.backup_db, entries)
        stack = _stack(
            {
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_URL": f"redis://127.0.0.1:{server.port}/{self.target_db}",
                "CACHE_KEY_PREFIX": "clear_",
                "LOCALCACHE_TYPE": "NullCache",
            }
        )
        self.func = cached_for(hours=1, stack=stack)(entry)
        self.func.clear_cache()  # connects, so no clear measured pays for a connection

    def __call__(self) -> float:
        """Copy the backup in, time ``clear_cache()``; return nanoseconds per key."""
        self.server.client(db=self.target_db).flushdb()
        source = self.server.client(db=self.backup_db)
        for first in range(0, len(self.names), CHUNK):
            pipe = source.pipeline(transaction=False)
            for name in self.names[first : first + CHUNK]:
                pipe.copy(name, name, destination_db=self.target_db)
            pipe.execute()
        self.server.reset_stats()
        start = time.perf_counter_ns()
        removed = self.func.clear_cache()
        elapsed = time.perf_counter_ns() - start
        self.commands.update(self.server.command_counts())
        assert removed == self.entries, (removed, self.entries)
        assert self.server.client(db=self.target_db).dbsize() == 0
        return elapsed / self.entries

    def drop(self) -> None:
        """Empty both databases."""
        for db in (self.backup_db, self.target_db):
            self.server.client(db=db).flushdb()


def clear_times(
    server: RedisServer, sizes: Sequence[int], rounds: int
) -> tuple[Table, Counter[str]]:
    """Time ``clear_cache()`` of a function with each of ``sizes`` keys; count the commands."""
    commands: Counter[str] = Counter()
    cases = {label(n): ClearCase(server, index, n, commands) for index, n in enumerate(sizes)}
    samples = measure_rounds(cases, rounds)
    for case in cases.values():
        case.drop()
    table = make_table("clear_cache() time per key", samples, label(sizes[0]), per="key")
    return table, commands


def _flat(table: Table, what: str, target: str, suffix: str = "") -> list[Check]:
    return [
        check(
            "growth",
            table,
            name,
            target,
            short=f"{what}{suffix}, {name.split()[0]} vs {table.anchor.split()[0]}",
            at_most=1.5,
            label=f"{what}, {name}",
        )
        for name in list(table.figures)[1:]
    ]


def run(ctx: Context) -> list[CaseResult]:
    """Measure hit times and clear times as the entries grow."""
    sizes = ctx.pick((1_000, 100_000, 1_000_000), (1_000, 100_000))
    clear_sizes = ctx.pick((1_000, 10_000, 100_000), (1_000, 10_000))
    local, local_hot, reference = local_hits(sizes, *ctx.pick((60, 1000), (3, 100)))
    shared = shared_hits(ctx.server, sizes, *ctx.pick((100, 30), (3, 10)))
    clear, commands = clear_times(ctx.server, clear_sizes, ctx.pick(5, 2))
    first = label(sizes[0])
    checks = [
        *_flat(local, "local hit", f"flat: <= 1.5x the {first} figure"),
        *_flat(local_hot, "local hit", f"flat: <= 1.5x the {first} figure", f" ({HOT:,} hot keys)"),
        *_flat(shared, "shared hit", f"flat: <= 1.5x the {first} figure"),
        *_flat(clear, "clear_cache() per key", f"linear: <= 1.5x the {first} figure per key"),
        count_check(
            "growth",
            "clear_cache()",
            "KEYS calls (INFO commandstats)",
            commands.get("keys", 0),
            "never a KEYS call",
        ),
    ]
    notes = {"clear_cache_commands": dict(sorted(commands.items()))}
    return [CaseResult("growth", [local, local_hot, reference, shared, clear], checks, notes)]
