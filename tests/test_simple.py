"""SimpleCache and SimpleCacheNoSerializer: LRU order, threshold, expiry, references.

The stateful model test of SimpleCache is scenario 11 of the reliability suite
(``tests/reliability/test_models.py``).
"""

from __future__ import annotations

import logging
import math
import threading

import pytest

from stratacache import NO_VALUE
from stratacache_plugins.simple import SimpleCache, SimpleCacheNoSerializer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_reads_refresh_recency(clock: Clock) -> None:
    cache = SimpleCache(threshold=3, clock=clock)
    for key in "abc":
        cache.set(key, key)
    cache.get("a")  # now b is the least recently used
    cache.set("d", "d")
    assert list(cache._cache) == ["c", "a", "d"]
    assert cache.get("b") is None


def test_has_does_not_refresh_recency(clock: Clock) -> None:
    cache = SimpleCache(threshold=2, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.has("a")
    cache.set("c", 3)
    assert cache.get("a") is None


def test_expired_entries_are_evicted_before_fresh_ones(clock: Clock) -> None:
    cache = SimpleCache(threshold=3, clock=clock)
    cache.set("fresh-old", 1, timeout=0)
    cache.set("short", 2, timeout=10)
    cache.set("fresh-new", 3, timeout=100)
    clock.now += 20
    cache.set("newest", 4)
    assert sorted(cache._cache) == ["fresh-new", "fresh-old", "newest"]


def test_threshold_bounds_the_entry_count(clock: Clock) -> None:
    cache = SimpleCache(threshold=50, clock=clock)
    for i in range(1000):
        cache.set(f"k{i}", i, timeout=(i % 3) * 5)
        if i % 100 == 0:
            clock.now += 7
    assert len(cache) == 50
    assert len(cache._expiry) <= 2 * len(cache) + 64


def test_expiry_follows_the_clock(clock: Clock) -> None:
    cache = SimpleCache(default_timeout=10, clock=clock)
    cache.set("a", 1)
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.2
    assert cache.lookup("a") is NO_VALUE
    assert len(cache) == 0, "an expired entry is dropped when read"


def test_add_replaces_an_expired_entry(clock: Clock) -> None:
    cache = SimpleCache(clock=clock)
    cache.set("a", 1, timeout=1)
    clock.now += 2
    assert cache.add("a", 2) is True
    assert cache.get("a") == 2


def test_negative_timeout_is_already_expired(clock: Clock) -> None:
    cache = SimpleCache(clock=clock)
    cache.set("a", 1, timeout=-1)
    assert cache.get("a") is None


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match=r"threshold must be >= 0 \(0 = no limit\), got -1"):
        SimpleCache(threshold=-1)
    with pytest.raises(ValueError, match="default_timeout must be >= 0"):
        SimpleCache(default_timeout=-5)
    with pytest.raises(TypeError, match="timeout must be a number"):
        SimpleCache().set("a", 1, timeout="soon")  # type: ignore[arg-type]


def test_threshold_zero_means_no_limit(clock: Clock) -> None:
    cache = SimpleCache(threshold=0, clock=clock)
    for i in range(1000):
        cache.set(f"k{i}", i)
    assert len(cache) == 1000, "0 is no limit, as for FileSystemCache (not cachelib's 500)"
    assert cache.get("k0") == 0


def test_without_a_limit_writes_drop_expired_entries(clock: Clock) -> None:
    cache = SimpleCache(threshold=0, default_timeout=10, clock=clock)
    for i in range(100):
        cache.set(f"old{i}", i)
    cache.set("forever", "f", timeout=0)
    clock.now += 11
    for i in range(30):
        cache.set(f"new{i}", i)
    assert len(cache) == 31, "each write dropped up to 4 expired entries: all 100 are gone"
    assert all(cache.get(f"new{i}") == i for i in range(30))
    assert cache.get("forever") == "f"


def test_unreadable_entry_is_a_miss_and_is_deleted(caplog: pytest.LogCaptureFixture) -> None:
    cache = SimpleCache()
    cache.set("a", {"nested": [1]})  # pickled: a flat copy would not keep it apart
    expires, _, group, restore = cache._cache["a"]
    cache._cache["a"] = (expires, b"\x80\x05garbage", group, restore)
    with caplog.at_level(logging.WARNING):
        assert cache.lookup("a") is NO_VALUE
    assert "a" not in cache._cache
    assert "deleting unreadable entry 'a'" in caplog.text


def test_no_serializer_keeps_references() -> None:
    cache = SimpleCacheNoSerializer()
    value = {"lock": threading.Lock()}
    cache.set("a", value)
    assert cache.get("a") is value
    assert cache.inc("n") == 1


def test_tracking_survives_overwrite_into_another_group() -> None:
    cache = SimpleCache()
    cache.set_tracked("k", 1, None, "g1")
    cache.set_tracked("k", 2, None, "g2")
    assert cache.clear_tracked("g1") == 0
    assert cache.clear_tracked("g2") == 1
    assert cache._groups == {}


def test_eviction_untracks(clock: Clock) -> None:
    cache = SimpleCache(threshold=2, clock=clock)
    for i in range(5):
        cache.set_tracked(f"k{i}", i, 1 if i == 0 else None, "g")
    clock.now += 5
    cache.set_tracked("k9", 9, None, "g")
    assert cache._groups["g"] == set(cache._cache)


# -- lookup_entry: the value and what is left of its life ---------------------------------


def test_lookup_entry_remaining_follows_the_clock(clock: Clock) -> None:
    cache = SimpleCache(default_timeout=10, clock=clock)
    cache.set("a", 1)
    cache.set("forever", 2, timeout=0)
    clock.now += 2.5
    assert cache.lookup_entry("a") == (1, 7.5)
    assert cache.lookup_entry("forever") == (2, math.inf)
    clock.now += 7.5
    assert cache.lookup_entry("a") == (NO_VALUE, None)
    assert "a" not in cache._cache, "an expired entry is dropped when read"


def test_lookup_entry_refreshes_recency(clock: Clock) -> None:
    cache = SimpleCache(threshold=2, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.lookup_entry("a")  # now b is the least recently used
    cache.set("c", 3)
    assert list(cache._cache) == ["a", "c"]


def test_lookup_entry_of_an_unreadable_entry_is_a_miss_and_deletes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = SimpleCache()
    cache.set("a", {"nested": [1]})
    expires, _, group, restore = cache._cache["a"]
    cache._cache["a"] = (expires, b"\x80\x05garbage", group, restore)
    with caplog.at_level(logging.WARNING):
        assert cache.lookup_entry("a") == (NO_VALUE, None)
    assert "a" not in cache._cache
    assert cache.stats.deserialization_failures == 1


def test_lookup_entry_without_serializer_returns_the_object(clock: Clock) -> None:
    cache = SimpleCacheNoSerializer(clock=clock)
    value = {"lock": threading.Lock()}
    cache.set("a", value, timeout=5)
    found, remaining = cache.lookup_entry("a")
    assert found is value
    assert remaining == 5
