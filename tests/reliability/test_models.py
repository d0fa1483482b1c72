"""Scenario 11: stateful model tests of SimpleCache and FileSystemCache against a dict model.

Hypothesis drives each backend through random sequences of operations (set, add, get,
get_many, set_many, has, delete, delete_many, inc, dec, tracked writes, clear) while a
controllable clock moves time forward; after every step the backend must agree with a plain
dict model of what it should hold.

* SimpleCache is modelled exactly: the model is an ordered dict in recency order, expired
  entries included until a read drops them or the threshold evicts them (expired first,
  soonest expiry first, then the least recently used), so the backend's own order, expiries
  and tracking groups are compared with the model's after every step.
* FileSystemCache keeps no recency, and which entries its prune removes depends on the
  files' modification times, which only the file system knows. The model predicts every
  entry's value and expiry and checks every prune against the documented policy: each
  expired entry goes, the fresh ones left number the prune's target, and no fresh entry goes
  while an older one stays.
"""

from __future__ import annotations

import math
import shutil
import struct
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from stratacache import NO_VALUE
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.simple import SimpleCache
from tests.test_simple import Clock

from .figures import record

KEYS = [f"k{i}" for i in range(8)]
GROUPS = ["g1", "g2"]
THRESHOLD = 5
DEFAULT_TIMEOUT = 10

keys = st.sampled_from(KEYS)
groups = st.sampled_from(GROUPS)
values = st.integers(-3, 3)
deltas = st.integers(-2, 2)
timeouts = st.sampled_from([None, -1, 0, 0.5, 1, 5])  # None: the default; 0: never; < 0: expired
ticks = st.sampled_from([0.25, 1, 3, 12])
key_lists = st.lists(keys, max_size=4)
mappings = st.dictionaries(keys, values, max_size=4)

# Budgets: small enough for CI, large enough to reach evictions, prunes and expiry races.
SIMPLE_BUDGET = settings(
    max_examples=250, stateful_step_count=50, deadline=None, database=None, print_blob=True
)
FILESYSTEM_BUDGET = settings(
    max_examples=100, stateful_step_count=40, deadline=None, database=None, print_blob=True
)

Entry = tuple[float, int, str | None]  # expires at (inf = never), value, tracking group


class _Counting(RuleBasedStateMachine):
    """Counts examples, steps and what happened, for the recorded figures; holds the rules
    both models share (``cache`` is the backend under test, ``model`` the dict it must match).
    """

    stats: ClassVar[Counter[str]] = Counter()
    cache: Any
    model: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.stats["examples"] += 1

    def step(self, name: str) -> None:
        self.stats["steps"] += 1
        self.stats[name] += 1

    def expires(self, timeout: float | None) -> float:
        seconds = DEFAULT_TIMEOUT if timeout is None else timeout
        return math.inf if seconds == 0 else self.clock.now + seconds

    @rule(key=keys)
    def delete(self, key: str) -> None:
        self.step("delete")
        assert self.cache.delete(key) is (key in self.model)
        self.model.pop(key, None)

    @rule(many=key_lists)
    def delete_many(self, many: list[str]) -> None:
        self.step("delete_many")
        assert self.cache.delete_many(*many) == many
        for key in many:
            self.model.pop(key, None)

    @rule()
    def clear(self) -> None:
        self.step("clear")
        assert self.cache.clear() is True
        self.model.clear()

    @rule(seconds=ticks)
    def tick(self, seconds: float) -> None:
        self.step("tick")
        self.clock.now += seconds


# -- SimpleCache --------------------------------------------------------------------------


class SimpleCacheModel(_Counting):
    """SimpleCache behaves like an ordered dict with LRU eviction, expiry and groups."""

    stats: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.cache = SimpleCache(
            threshold=THRESHOLD, default_timeout=DEFAULT_TIMEOUT, clock=self.clock
        )
        # Entries physically held, expired ones included, in recency order (oldest first).
        self.model: dict[str, Entry] = {}

    def alive(self, key: str) -> bool:
        return key in self.model and self.model[key][0] > self.clock.now

    def put(self, key: str, value: int, expires: float, group: str | None = None) -> None:
        self.model.pop(key, None)
        self.model[key] = (expires, value, group)
        if len(self.model) > THRESHOLD:
            # The documented policy: expired entries first (soonest expiry, then key, as the
            # expiry heap orders them), then the least recently used.
            now = self.clock.now
            for _expires, stale in sorted((e, k) for k, (e, _, _) in self.model.items()):
                if _expires > now or len(self.model) <= THRESHOLD:
                    break
                del self.model[stale]
                self.stats["expired evicted"] += 1
            while len(self.model) > THRESHOLD:
                del self.model[next(iter(self.model))]
                self.stats["least recently used evicted"] += 1

    def read(self, key: str) -> Any:
        """What a read returns, applying its effects to the model."""
        if self.alive(key):
            self.model[key] = self.model.pop(key)  # most recently used now
            return self.model[key][1]
        if self.model.pop(key, None) is not None:
            self.stats["expired entries dropped by a read"] += 1
        return NO_VALUE

    @rule(key=keys, value=values, timeout=timeouts)
    def set(self, key: str, value: int, timeout: float | None) -> None:
        self.step("set")
        assert self.cache.set(key, value, timeout=timeout) is True
        self.put(key, value, self.expires(timeout))

    @rule(key=keys, value=values, timeout=timeouts, group=groups)
    def set_tracked(self, key: str, value: int, timeout: float | None, group: str) -> None:
        self.step("set_tracked")
        assert self.cache.set_tracked(key, value, timeout, group) is True
        self.put(key, value, self.expires(timeout))
        if key in self.model:  # not evicted at once (an expired write over the threshold)
            expires, value, _ = self.model[key]
            self.model[key] = (expires, value, group)

    @rule(key=keys, value=values, timeout=timeouts)
    def add(self, key: str, value: int, timeout: float | None) -> None:
        self.step("add")
        expected = not self.alive(key)
        assert self.cache.add(key, value, timeout=timeout) is expected
        if expected:
            self.put(key, value, self.expires(timeout))

    @rule(key=keys)
    def lookup(self, key: str) -> None:
        self.step("lookup")
        assert self.cache.lookup(key) == self.read(key)

    @rule(many=key_lists)
    def get_many(self, many: list[str]) -> None:
        self.step("get_many")
        expected = [self.read(key) for key in many]
        assert self.cache.get_many(*many) == [None if v is NO_VALUE else v for v in expected]

    @rule(mapping=mappings, timeout=timeouts)
    def set_many(self, mapping: dict[str, int], timeout: float | None) -> None:
        self.step("set_many")
        assert self.cache.set_many(mapping, timeout) == list(mapping)
        for key, value in mapping.items():
            self.put(key, value, self.expires(timeout))

    @rule(key=keys)
    def has(self, key: str) -> None:
        self.step("has")
        assert self.cache.has(key) is self.alive(key)  # recency unchanged, nothing dropped

    @rule(key=keys, delta=deltas, decrement=st.booleans())
    def inc_or_dec(self, key: str, delta: int, decrement: bool) -> None:
        self.step("dec" if decrement else "inc")
        group = self.model[key][2] if key in self.model else None  # inc keeps the group
        current = self.model[key][1] if self.alive(key) else 0
        expected = current - delta if decrement else current + delta
        operation = self.cache.dec if decrement else self.cache.inc
        assert operation(key, delta) == expected
        self.put(key, expected, self.expires(None), group)

    @rule(group=groups)
    def clear_tracked(self, group: str) -> None:
        self.step("clear_tracked")
        members = [k for k, (_, _, g) in self.model.items() if g == group]
        assert self.cache.clear_tracked(group) == len(members)
        for key in members:
            del self.model[key]

    @invariant()
    def agrees_with_the_model(self) -> None:
        held = self.cache._cache
        assert list(held) == list(self.model), "entries or their recency order differ"
        for key, (expires, value, group) in self.model.items():
            assert held[key][0] == expires, key
            assert held[key][2] == group, key
            data, restore = held[key][1], held[key][3]  # the form the write chose
            assert (data if restore is None else restore(data)) == value, key
        assert len(self.cache) <= THRESHOLD
        tracked: dict[str, set[str]] = {}
        for key, (_, _, group) in self.model.items():
            if group is not None:
                tracked.setdefault(group, set()).add(key)
        assert self.cache._groups == tracked


# -- FileSystemCache ----------------------------------------------------------------------

HEADER = struct.Struct("<4sB3xd")  # magic, version, padding, expiry (0.0 = never)
FS_THRESHOLD = 6
FS_TARGET = max(1, FS_THRESHOLD * 9 // 10)  # what a prune leaves (see filesystem.pruning)


class FileSystemCacheModel(_Counting):
    """FileSystemCache behaves like a dict with expiry, and every prune follows the policy."""

    stats: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="stratacache-model-"))
        self.cache = FileSystemCache(
            self.directory,
            threshold=FS_THRESHOLD,
            default_timeout=DEFAULT_TIMEOUT,
            clock=self.clock,
        )
        self.names = {Path(self.cache._path(key)).name: key for key in KEYS}
        self.model: dict[str, tuple[float, int]] = {}  # the files there should be

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def alive(self, key: str) -> bool:
        return key in self.model and self.model[key][0] > self.clock.now

    def files(self) -> dict[str, int]:
        """The entries on disk: key -> modification time (ns)."""
        found = {}
        for path in self.directory.glob("*.entry"):
            assert path.name in self.names, f"a file no key of the model maps to: {path}"
            found[self.names[path.name]] = path.stat().st_mtime_ns
        return found

    def write(self, action: Callable[[], Any], written: dict[str, tuple[float, int]]) -> Any:
        """Run a write of ``written``; check any prune it ran against the policy."""
        may_create = any(not self.alive(key) for key in written)
        before = self.files()
        result = action()
        after = self.files()
        expected = {**self.model, **written}
        gone = set(expected) - set(after)
        if gone:
            self.check_prune(expected, before, after, written, may_create)
        self.model = {key: expected[key] for key in after}
        return result

    def check_prune(
        self,
        expected: dict[str, tuple[float, int]],
        before: dict[str, int],
        after: dict[str, int],
        written: dict[str, tuple[float, int]],
        may_create: bool,
    ) -> None:
        self.stats["prunes seen"] += 1
        assert may_create, "entries vanished on a write that created no file"
        now = self.clock.now
        expired = {k for k, (e, _) in expected.items() if e <= now}
        fresh = set(expected) - expired
        assert not expired & set(after), "an expired entry survived a prune"
        evicted = fresh - set(after)
        self.stats["expired pruned"] += len(expired)
        self.stats["fresh pruned (oldest)"] += len(evicted)
        if len(written) == 1:  # one file created, one prune at most
            assert len(after) == min(len(fresh), FS_TARGET), (len(after), len(fresh))
            assert not evicted & set(written), "the prune removed the entry just written"
        older = [before[k] for k in evicted if k in before and k not in written]
        if older:
            assert max(older) <= min(after[k] for k in fresh & set(after)), (
                "a fresh entry was pruned while an older one stayed"
            )

    def read(self, key: str) -> Any:
        if self.alive(key):
            return self.model[key][1]
        if self.model.pop(key, None) is not None:
            self.stats["expired entries dropped by a read"] += 1
        return NO_VALUE

    @rule(key=keys, value=values, timeout=timeouts)
    def set(self, key: str, value: int, timeout: float | None) -> None:
        self.step("set")
        entry = {key: (self.expires(timeout), value)}
        assert self.write(lambda: self.cache.set(key, value, timeout), entry) is True

    @rule(key=keys, value=values, timeout=timeouts)
    def add(self, key: str, value: int, timeout: float | None) -> None:
        self.step("add")
        if self.alive(key):
            assert self.cache.add(key, value, timeout) is False
        else:
            entry = {key: (self.expires(timeout), value)}
            assert self.write(lambda: self.cache.add(key, value, timeout), entry) is True

    @rule(key=keys)
    def lookup(self, key: str) -> None:
        self.step("lookup")
        assert self.cache.lookup(key) == self.read(key)

    @rule(many=key_lists)
    def get_many(self, many: list[str]) -> None:
        self.step("get_many")
        expected = [self.read(key) for key in many]
        assert self.cache.get_many(*many) == [None if v is NO_VALUE else v for v in expected]

    @rule(mapping=mappings, timeout=st.sampled_from([None, 0, 1, 5]))
    def set_many(self, mapping: dict[str, int], timeout: float | None) -> None:
        self.step("set_many")
        entries = {key: (self.expires(timeout), value) for key, value in mapping.items()}
        assert self.write(lambda: self.cache.set_many(mapping, timeout), entries) == list(mapping)

    @rule(key=keys)
    def has(self, key: str) -> None:
        self.step("has")
        expected = self.alive(key)
        assert self.cache.has(key) is expected
        if not expected:
            self.model.pop(key, None)  # an expired file is removed when found

    @rule(key=keys, delta=deltas, decrement=st.booleans())
    def inc_or_dec(self, key: str, delta: int, decrement: bool) -> None:
        self.step("dec" if decrement else "inc")
        current = self.model[key][1] if self.alive(key) else 0
        new = current - delta if decrement else current + delta
        operation = self.cache.dec if decrement else self.cache.inc
        assert self.write(lambda: operation(key, delta), {key: (self.expires(None), new)}) == new

    @invariant()
    def agrees_with_the_model(self) -> None:
        names = {p.name for p in self.directory.iterdir()} - {
            "stratacache.lock",
            "stratacache.count",
        }
        assert all(n.endswith(".entry") for n in names), f"temporary files left: {names}"
        assert set(self.files()) == set(self.model)
        assert len(self.model) <= FS_THRESHOLD
        for key, (expires, _) in self.model.items():  # the header only: reads have effects
            header = Path(self.cache._path(key)).read_bytes()[: HEADER.size]
            assert HEADER.unpack(header)[2] == (0.0 if expires == math.inf else expires), key


# -- the tests ----------------------------------------------------------------------------


def _run(machine: type[_Counting], budget: settings, model: str) -> dict[str, Any]:
    """Run the model test; return its figures (a failure raises, shrunk by Hypothesis)."""
    machine.stats.clear()
    run_state_machine_as_test(machine, settings=budget)
    stats = dict(machine.stats)
    outcomes = {k: v for k, v in stats.items() if " " in k}  # the other keys count rules
    return {
        "model": model,
        "examples": stats.pop("examples", 0),
        "steps": stats.pop("steps", 0),
        "failures found": 0,  # we are past the run: it found none
        "max examples": budget.max_examples,
        "steps per example": budget.stateful_step_count,
        "outcomes": ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())),
    }


def _record(row: dict[str, Any], name: str, requirement: str) -> None:
    record(
        11,
        f"Stateful model test of {row['model']} (Hypothesis)",
        requirement=requirement,
        figures={k: row[k] for k in ("examples", "steps", "failures found")},
        table=[row],
        name=name,
    )


def test_simple_cache_agrees_with_its_model() -> None:
    row = _run(SimpleCacheModel, SIMPLE_BUDGET, "SimpleCache")
    assert row["steps"] > 1000
    assert SimpleCacheModel.stats["expired evicted"] > 0
    assert SimpleCacheModel.stats["least recently used evicted"] > 0
    _record(
        row,
        "simplecache",
        "after every step: same entries in the same recency order, same expiries, values and"
        " groups as an LRU dict model; threshold evicts expired first, then least recently used",
    )


def test_filesystem_cache_agrees_with_its_model() -> None:
    row = _run(FileSystemCacheModel, FILESYSTEM_BUDGET, "FileSystemCache")
    assert row["steps"] > 500
    assert FileSystemCacheModel.stats["prunes seen"] > 0
    assert FileSystemCacheModel.stats["fresh pruned (oldest)"] > 0
    _record(
        row,
        "filesystemcache",
        "after every step: same files, values and expiry headers as a dict model, no temporary"
        " file left; every prune removes all expired entries, then only the oldest fresh ones",
    )
