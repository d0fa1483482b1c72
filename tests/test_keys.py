"""Keys: stable across processes, canonical, bounded, never from id() or hash()."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import json
import uuid
from pathlib import PurePosixPath
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratacache.keys import MAX_KEY_LENGTH, KeyBuilder, encode_value

from .conftest import clean_env, root_pythonpath, run_python


class Color(enum.Enum):
    RED = 1


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    width: int
    tags: list[str]


class Opaque:
    pass


def f(x: Any, y: int = 2, *args: Any, z: str = "z", **kwargs: Any) -> None:
    """A function whose every parameter kind enters the key."""


def plain(a: Any, b: Any = None) -> None:
    """A function with positional parameters only."""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        (True, "True"),
        (1.0, "1.0"),
        ("1", "'1'"),
        (None, "None"),
        (b"1", "b'1'"),
        ((1,), "(1,)"),
        ([1, "a"], "[1, 'a']"),
        ({"b": 1, "a": 2}, "{'a': 2, 'b': 1}"),
        ({3, 1, 2}, "set({1, 2, 3})"),
        (frozenset({"b", "a"}), "frozenset({'a', 'b'})"),
        (Color.RED, "tests.test_keys.Color.RED"),
        (Point(1, 2), "tests.test_keys.Point:(1, 2)"),
        (Box(1, ["a"]), "tests.test_keys.Box(width=1,tags=['a'])"),
        (int, "<class builtins.int>"),
        (datetime.date(2024, 1, 2), "datetime.date(2024, 1, 2)"),
        (decimal.Decimal("1.10"), "Decimal('1.10')"),
        (uuid.UUID(int=1), "UUID('00000000-0000-0000-0000-000000000001')"),
        (PurePosixPath("/a/b"), "PurePosixPath('/a/b')"),
    ],
)
def test_canonical_forms(value: Any, expected: str) -> None:
    assert encode_value(value) == expected


def test_values_that_compare_equal_but_differ_get_different_keys() -> None:
    forms = {encode_value(v) for v in (1, 1.0, True, "1", b"1", (1,), [1])}
    assert len(forms) == 7


def test_objects_without_a_stable_form_are_refused() -> None:
    with pytest.raises(TypeError, match="__cache_key__"):
        encode_value(Opaque())
    with pytest.raises(TypeError, match="memory address"):
        encode_value([Opaque()])


def test_all_parameter_kinds_are_bound_in_order() -> None:
    keys = KeyBuilder(f)
    base = keys((1,), {})
    assert base == "{tests.test_keys.f}(1, 2, (), 'z', {})"
    assert keys((), {"x": 1}) == keys((1, 2), {}) == keys((1,), {"z": "z"}) == base
    expected = "{tests.test_keys.f}(1, 2, (3,), 'z', {'j': 2, 'k': 1})"
    assert keys((1, 2, 3), {"k": 1, "j": 2}) == expected


def test_fast_path_matches_binding() -> None:
    keys = KeyBuilder(plain)
    assert keys((1,), {}) == keys((), {"a": 1}) == keys((1, None), {}) == keys((1,), {"b": None})


@given(st.lists(st.none() | st.booleans() | st.integers() | st.text() | st.binary(), max_size=2))
def test_fast_path_gives_the_canonical_text(values: list[Any]) -> None:
    keys = KeyBuilder(plain)
    args = tuple(values) or (None,)
    head = "{tests.test_keys.plain}"
    canonical = head + encode_value((*args, None)[:2])
    fast = keys(args, {})
    assert fast == keys((), dict(zip("ab", args, strict=False))), "fast path == binding"
    if len(canonical) <= MAX_KEY_LENGTH:
        assert fast == canonical
    else:  # a long key keeps its start and end around a digest of the whole
        digest = fast.rpartition("#")[2]
        body = canonical[len(head) :]
        assert fast.startswith(head)
        assert fast[len(head) :].rpartition("#")[0] == f"{body[:60]}...{body[-30:]}"
        assert digest == hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def test_wrong_arguments_raise_like_the_function() -> None:
    with pytest.raises(TypeError, match="missing a required argument"):
        KeyBuilder(plain)((), {})


def test_long_keys_are_bounded_and_distinct() -> None:
    keys = KeyBuilder(plain)
    long_a = keys(("x" * 5000 + "a",), {})
    long_b = keys(("x" * 5000 + "b",), {})
    assert len(long_a) <= MAX_KEY_LENGTH + 80
    assert long_a != long_b
    assert long_a.startswith("{tests.test_keys.plain}('xxx")


hashable_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4).map(tuple) | st.frozensets(inner, max_size=4),
    max_leaves=12,
)


@given(hashable_values, hashable_values)
def test_equal_keys_mean_equal_values(a: Any, b: Any) -> None:
    if encode_value(a) == encode_value(b):
        assert a == b
        assert type(a) is type(b)


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=6))
def test_dict_and_set_order_does_not_matter(mapping: dict[str, int]) -> None:
    reordered = dict(reversed(list(mapping.items())))
    assert encode_value(mapping) == encode_value(reordered)


def cross_process_samples() -> list[str]:
    """Keys of varied calls, computed the same way here and in a fresh process."""
    samples: list[Any] = [
        ["EUR", 3, {"b": [1, 2], "a": None}],
        [frozenset({"x", "y", "z"}), {"é", "ü", "a"}],
        [1.5, True, None, b"\x00\xff"],
        [Color.RED, Point(1, 2), Box(3, ["t"])],
        [datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC), decimal.Decimal("2.50")],
        ["x" * 400],
    ]
    keys = KeyBuilder(f)
    return [keys((s[0], 5, *s[1:]), {"extra": s}) for s in samples]


@pytest.mark.subprocess
def test_keys_are_equal_in_another_process() -> None:
    code = (
        "import json; "
        "from tests.test_keys import cross_process_samples as s; print(json.dumps(s()))"
    )
    env = clean_env(PYTHONHASHSEED="12345", PYTHONPATH=root_pythonpath())
    there = json.loads(run_python(code, env=env).stdout)
    assert there == cross_process_samples()


def test_reprs_that_show_an_address_are_refused() -> None:
    import threading

    for value in (lambda: 1, threading.Lock(), [1, object()]):
        with pytest.raises(TypeError, match="no value-based representation"):
            encode_value(value)


def test_module_level_functions_are_keyed_by_name() -> None:
    assert encode_value(plain) == "<function tests.test_keys.plain>"
    assert encode_value(len) == "<function builtins.len>"
