"""SimpleCache's stored forms: a returned value is never the cached one, whatever its form.

SimpleCache chooses at write time how a value is kept (by reference when immutable, as a
flat copy when a dict, list or set of immutables, else pickled: see
``stratacache_plugins.simplecopy``). These tests hold the contract that choice must keep,
through the backend and through ``cached_for``: a caller mutating what it got (or what it
stored) never changes the cached value, and every value comes back equal and of the same
types, all the way down.
"""

from __future__ import annotations

import collections
import math
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratacache import CacheStack, JsonSerializer, cached_for
from stratacache_plugins.simple import SimpleCache, SimpleCacheNoSerializer
from stratacache_plugins.simplecopy import immutable, stored_form

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
immutables = st.recursive(
    scalars,
    lambda inner: (
        st.tuples(inner, inner)
        | st.lists(inner, max_size=3).map(tuple)
        # frozensets hash their elements: only the hashable ones
        | st.frozensets(scalars, max_size=3)
    ),
    max_leaves=12,
)
hashables = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6
)
values = st.recursive(
    immutables,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.sets(hashables, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
    ),
    max_leaves=16,
)


def same(a: Any, b: Any) -> None:
    """Assert that ``a`` and ``b`` are equal and of the same types, all the way down."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    elif type(a) in (list, tuple):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    elif type(a) is dict:
        assert list(a) == list(b), (a, b)  # insertion order kept too
        for key in a:
            same(a[key], b[key])
    else:
        assert a == b, (a, b)


def stack_function() -> Callable[[str], Any]:
    """A function cached on a SimpleCache-only stack that returns what ``store`` holds."""
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "NullCache", "LOCALCACHE_TYPE": "SimpleCache"})
    store: dict[str, Any] = {}

    @cached_for(minutes=5, stack=stack)
    def f(name: str) -> Any:
        return store[name]

    f.store = store  # type: ignore[attr-defined]
    return f


MUTABLE_CASES: dict[str, tuple[Any, Callable[[Any], None]]] = {
    "dict": ({"a": 1, "b": "x"}, lambda v: v.update(c=3)),
    "dict-value-replaced": ({"a": 1}, lambda v: v.__setitem__("a", 2)),
    "list": ([1, 2.5, "x"], lambda v: v.append(4)),
    "set": ({1, 2, "x"}, lambda v: v.add(99)),
    "tuple-holding-a-list": ((1, [2, 3]), lambda v: v[1].append(4)),
    "nested-tuple-holding-a-list": ((1, (2, [3])), lambda v: v[1][1].append(4)),
    "dict-holding-a-list": ({"a": [1]}, lambda v: v["a"].append(2)),
    "list-of-dicts": ([{"a": 1}], lambda v: v[0].update(b=2)),
    "set-in-a-tuple": ((frozenset({1}), {2}), lambda v: v[1].add(3)),
    "ordered-dict": (collections.OrderedDict(a=1), lambda v: v.update(b=2)),
}


@pytest.mark.parametrize("case", list(MUTABLE_CASES), ids=list(MUTABLE_CASES))
def test_mutating_a_returned_value_never_changes_the_cached_one(case: str) -> None:
    original, mutate = MUTABLE_CASES[case]
    expected = pickle.loads(pickle.dumps(original))
    cache = SimpleCache()
    cache.set("k", original)
    first = cache.get("k")
    mutate(first)
    same(cache.get("k"), expected)
    mutate(original)  # what the caller stored is its own too
    same(cache.get("k"), expected)
    assert cache.get("k") is not cache.get("k"), "each read is a fresh value"


@pytest.mark.parametrize("case", list(MUTABLE_CASES), ids=list(MUTABLE_CASES))
def test_through_cached_for_too(case: str) -> None:
    original, mutate = MUTABLE_CASES[case]
    expected = pickle.loads(pickle.dumps(original))
    f = stack_function()
    f.store["k"] = original  # type: ignore[attr-defined]
    mutate(f("k"))  # the miss's own result: the function's object, the caller's to keep
    mutate(original)
    same(f("k"), expected)  # a hit: the stored copy, unchanged
    mutate(f("k"))
    same(f("k"), expected)


@given(immutables)
def test_immutable_values_come_back_equal_of_the_same_types(value: Any) -> None:
    cache = SimpleCache()
    cache.set("k", value)
    same(cache.get("k"), value)
    assert immutable(value)
    assert cache.get("k") is value, "an immutable value is kept by reference, not copied"


@given(values)
def test_any_value_comes_back_as_pickle_would_return_it(value: Any) -> None:
    cache = SimpleCache()
    cache.set("k", value)
    got = cache.get("k")
    same(got, pickle.loads(pickle.dumps(value)))
    if not immutable(value):
        assert got is not value
        assert got is not cache.get("k"), "a fresh value on each read"


@given(values)
def test_cached_for_returns_values_as_pickle_would(value: Any) -> None:
    f = stack_function()
    f.store["k"] = value  # type: ignore[attr-defined]
    f("k")
    same(f("k"), pickle.loads(pickle.dumps(value)))


@pytest.mark.parametrize(
    ("value", "restore"),
    [
        ({"a": 1, ("t", 2): None}, dict.copy),
        ([1, "x", (2.5, b"y")], list.copy),
        ({1, frozenset({"x"})}, set.copy),
        (7, None),
        ((1, ("x", frozenset({2}))), None),
        ({"a": [1]}, pickle.loads),  # a mutable element: pickled
        ([{"a": 1}], pickle.loads),
        (collections.OrderedDict(a=1), pickle.loads),  # a subclass: pickled, keeps its type
        (collections.defaultdict(int, a=1), pickle.loads),
        (bytearray(b"x"), pickle.loads),
    ],
    # ids by hand: a set's repr follows the string hash, which differs between xdist workers
    ids=[
        "dict-of-immutables",
        "list-of-immutables",
        "set-of-immutables",
        "int",
        "nested-tuple",
        "dict-holding-a-list",
        "list-holding-a-dict",
        "OrderedDict",
        "defaultdict",
        "bytearray",
    ],
)
def test_the_form_is_chosen_at_write_time(value: Any, restore: Any) -> None:
    data, chosen = stored_form(value, pickle.dumps, pickle.loads)
    assert chosen is restore
    if restore is None:
        assert data is value
    elif restore is not pickle.loads:
        assert data is not value, "a private copy of the caller's value"
        assert data == value
    same(value if chosen is None else chosen(data), value)


def test_deep_tuples_are_pickled_not_walked() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = (deep,)
    _, restore = stored_form(deep, pickle.dumps, pickle.loads)
    assert restore is pickle.loads
    cache = SimpleCache()
    cache.set("k", deep)
    assert cache.get("k") == deep


def test_a_serializer_of_the_users_own_sees_every_value() -> None:
    cache = SimpleCache(serializer=JsonSerializer())
    cache.set("k", (1, 2))
    assert cache.get("k") == [1, 2], "JSON's round trip, not a reference to the tuple"
    assert isinstance(cache._cache["k"][1], bytes)


def test_no_serializer_keeps_every_value_by_reference() -> None:
    cache = SimpleCacheNoSerializer()
    value = {"a": [1]}
    cache.set("k", value)
    assert cache.get("k") is value


def test_inc_and_dec_read_and_write_the_int_form() -> None:
    cache = SimpleCache()
    cache.set("n", 5)
    assert cache.inc("n", 3) == 8
    assert cache.dec("n") == 7
    assert cache.get("n") == 7
    assert cache._cache["n"][1] == 7
    assert cache._cache["n"][3] is None, "kept as the int itself"


def test_a_subclass_overriding_lookup_is_what_the_hot_path_calls() -> None:
    class Counting(SimpleCache):
        reads = 0

        def lookup(self, key: str) -> Any:
            Counting.reads += 1
            return super().lookup(key)

    cache = Counting()
    cache.set("k", 1)
    assert cache.compiled_lookup()("k") == 1
    assert Counting.reads == 1
    assert SimpleCache().compiled_lookup() is not None
