"""The defaults of the Backend base class, which a minimal third-party backend inherits."""

from __future__ import annotations

import pickle
from datetime import timedelta
from typing import Any

import pytest

from stratacache import NO_VALUE, Backend, NoValue
from stratacache.backend import _GROUP_INDEX_PREFIX


class MinimalCache(Backend):
    """Only cachelib's primitives: get, set, delete, has, clear (no expiry)."""

    def __init__(self, default_timeout: int = 300, **options: Any) -> None:
        super().__init__(default_timeout)
        self.data: dict[str, Any] = {}
        self.options = options

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        self.data[key] = value
        return True

    def delete(self, key: str) -> bool:
        return self.data.pop(key, NO_VALUE) is not NO_VALUE

    def has(self, key: str) -> bool:
        return key in self.data

    def clear(self) -> bool:
        self.data.clear()
        return True


def test_default_lookup_tells_none_from_a_miss() -> None:
    cache = MinimalCache()
    cache.set("none", None)
    assert cache.lookup("none") is None
    assert cache.lookup("absent") is NO_VALUE


def test_default_tracking_keeps_an_index_entry() -> None:
    cache = MinimalCache()
    cache.set_tracked("a", 1, None, "grp")
    cache.set_tracked("a", 1, None, "grp")
    cache.set_tracked("b", 2, None, "grp")
    cache.set_tracked("untracked", 3)
    assert cache.get(_GROUP_INDEX_PREFIX + "grp") == ["a", "b"]
    assert cache.clear_tracked("grp") == 2
    assert set(cache.data) == {"untracked"}


def test_default_tracking_prunes_deleted_keys_as_it_grows() -> None:
    cache = MinimalCache()
    for i in range(63):
        cache.set_tracked(f"k{i}", i, None, "grp")
        cache.delete(f"k{i}")
    cache.set_tracked("last", 1, None, "grp")
    assert cache.get(_GROUP_INDEX_PREFIX + "grp") == ["last"]


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [(None, 300), (0, 0), (1.5, 1.5), (timedelta(minutes=2), 120), (-1, -1)],
)
def test_timeout_seconds(timeout: Any, seconds: float) -> None:
    assert MinimalCache().timeout_seconds(timeout) == seconds


@pytest.mark.parametrize("timeout", ["60", True, [1]])
def test_timeout_of_a_wrong_type(timeout: Any) -> None:
    with pytest.raises(TypeError, match="timeout must be a number of seconds"):
        MinimalCache().timeout_seconds(timeout)


def test_from_options_filters_generic_options_and_passes_explicit_ones() -> None:
    class Strict(MinimalCache):
        def __init__(self, default_timeout: int = 300) -> None:
            super().__init__(default_timeout)

    strict = Strict.from_options({"default_timeout": 5, "threshold": 9}, explicit={})
    assert strict.default_timeout == 5
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Strict.from_options({}, explicit={"colour": "red"})
    loose = MinimalCache.from_options({"threshold": 9}, explicit={"colour": "red"})
    assert loose.options == {"colour": "red"}, "**kwargs take only the user's explicit options"


def test_base_set_stores_nothing_and_close_is_a_no_op() -> None:
    class Bare(Backend):
        pass

    bare = Bare()
    assert bare.set("k", 1) is True
    assert bare.get("k") is None
    bare.close()
    assert repr(bare) == "Bare(default_timeout=300)"


def test_no_value_is_a_falsy_singleton_that_survives_pickling() -> None:
    assert NoValue() is NO_VALUE
    assert not NO_VALUE
    assert repr(NO_VALUE) == "NO_VALUE"
    assert pickle.loads(pickle.dumps(NO_VALUE)) is NO_VALUE


def test_negative_default_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="default_timeout must be >= 0"):
        MinimalCache(default_timeout=-1)
