"""Keys: stable across processes, canonical, bounded, never from id() or hash()."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import enum
import hashlib
import json
import math
import uuid
from collections import Counter
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


# Hardening 11.6 and 11.17: keys never collide, and hostile arguments fail clearly.


class Tagged:
    """Declares its key as the text it is given."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __cache_key__(self) -> str:
        return self.text


class Shown:
    """Keyed by a repr that is whatever text it is given."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def many(*items: Any) -> None:
    """A function of any number of arguments."""


def test_numpy_arrays_are_keyed_by_their_whole_content() -> None:
    import numpy as np

    a = np.arange(5000)
    b = a.copy()
    b[2500] = -1  # only the elided middle differs: the reprs are equal
    assert repr(a) == repr(b)
    assert encode_value(a) != encode_value(b)
    assert encode_value(a) == encode_value(np.arange(5000))
    forms = {
        encode_value(v)
        for v in (a, a.astype(np.int32), a.reshape(50, 100), a[::-1], a[::-1].copy()[::-1])
    }
    assert len(forms) == 4  # dtype and shape count; a reversed view keys by its values
    assert encode_value(np.array([1, "a", None], dtype=object)).endswith("[1, 'a', None])")
    scalars = (np.float64(1.5), 1.5, np.float32(1.5), np.int64(1), 1, np.bool_(True), True)
    assert len({encode_value(v) for v in scalars}) == len(scalars)


def test_pandas_objects_are_refused_with_the_way_to_key_them() -> None:
    frame = type("DataFrame", (), {"__module__": "pandas.core.frame", "__repr__": repr})
    with pytest.raises(TypeError, match=r"DataFrame: its repr truncates.*__cache_key__"):
        encode_value(frame())


def test_truncated_reprs_are_refused_but_strings_with_dots_are_not() -> None:
    for text in ("Big([1, 2, ..., 9])", "Long('abc\u2026')"):
        with pytest.raises(TypeError, match="repr looks truncated"):
            encode_value(Shown(text))
    assert encode_value("wait...") == "'wait...'"
    assert encode_value(Ellipsis) == "builtins.ellipsis<'Ellipsis'>"


@pytest.mark.subprocess
def test_numpy_is_never_imported_for_a_key() -> None:
    code = (
        "import sys; from stratacache.keys import encode_value as e; "
        "e([1, 'a', {2: b'x'}, 1.5, ...]); assert 'numpy' not in sys.modules, 'imported'"
    )
    run_python(code, env=clean_env(PYTHONPATH=root_pythonpath()))


def test_declared_keys_and_reprs_cannot_spell_another_argument_list() -> None:
    keys = KeyBuilder(many)
    forged = [
        ((Tagged("1"), Tagged("2")), (Tagged("1>, tests.test_keys.Tagged<2"),)),
        ((Tagged("a"),), (Tagged("'a'"),)),
        ((Shown("1"), Shown("2")), (Shown("1>, tests.test_keys.Shown<2"),)),
        ((1, 2), (Shown("1, 2"),)),
        (("a",), (Shown("'a'"),)),
    ]
    for honest, forgery in forged:
        assert keys(honest, {}) != keys(forgery, {}), forgery
        assert keys(([*honest],), {}) != keys(([*forgery],), {}), forgery
    assert encode_value(Tagged("x'>")) == 'tests.test_keys.Tagged<"x\'>">'


class Row:
    """An ORM-like row: the repr shows the name, ``__caching_id__`` the primary key."""

    def __init__(self, id_: int, name: str) -> None:
        self.id, self.name = id_, name

    def __repr__(self) -> str:
        return f"<Row {self.name}>"

    def __caching_id__(self, obj: Row) -> str:  # Flask-Caching calls obj.__caching_id__(obj)
        return f"row={self.id}"


class NoArgId(Row):
    def __caching_id__(self) -> str:  # type: ignore[override]  # the documented form
        return f"noarg={self.id}"


class AttributeId(Row):
    __caching_id__ = property(lambda self: self.id)  # type: ignore[assignment]


class Both(Row):
    def __cache_key__(self) -> str:
        return "ours"


def test_caching_id_is_honoured_after_cache_key() -> None:
    assert encode_value(Row(1, "ann")) != encode_value(Row(2, "ann"))
    assert encode_value(Row(1, "ann")) == encode_value(Row(1, "bob"))
    assert encode_value(Row(1, "x")) == "tests.test_keys.Row<'row=1'>"
    assert encode_value(NoArgId(1, "x")) == "tests.test_keys.NoArgId<'noarg=1'>"
    assert encode_value(AttributeId(7, "x")) == "tests.test_keys.AttributeId<7>"
    assert encode_value(Both(1, "x")) == "tests.test_keys.Both<'ours'>"


def test_caching_id_separates_bound_methods(stack: Any) -> None:
    from stratacache import cached_for

    class Account(Row):
        @cached_for(stack=stack)
        def balance(self) -> int:
            return self.id * 100

    assert Account(1, "same").balance() == 100
    assert Account(2, "same").balance() == 200


def test_lambdas_cannot_be_decorated_or_passed(stack: Any) -> None:
    from stratacache import cached_for

    with pytest.raises(TypeError, match=r"cannot cache a lambda.*Define it with def"):
        cached_for(stack=stack)(lambda x: x * x)

    def outer() -> Any:
        def inner() -> None: ...

        return inner

    for value in (lambda x: x * x, lambda x: 2 * x, outer(), outer()):
        with pytest.raises(TypeError, match="no value-based representation"):
            encode_value(value)


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 3 == 0 else ((value,) if i % 3 == 1 else {"k": value})
    return value


def test_deep_nesting_raises_the_documented_type_error() -> None:
    from stratacache.keys import MAX_DEPTH

    encode_value(nested(MAX_DEPTH))
    for value in (nested(10_000), nested(MAX_DEPTH + 1), nested(5000, Box(1, ["a"]))):
        with pytest.raises(TypeError, match=f"nested more than {MAX_DEPTH} levels deep"):
            KeyBuilder(plain)((value,), {})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="contains itself"):
        encode_value(loop)


def power(base: int, exp: int = 1) -> int:
    return base**exp


def test_a_partial_is_keyed_as_the_call_it_makes(stack: Any) -> None:
    import functools

    from stratacache import cached_for

    square = cached_for(stack=stack)(functools.partial(power, exp=2))
    cube = cached_for(stack=stack)(functools.partial(power, exp=3))
    assert (square(3), cube(3), square(3)) == (9, 27, 9)
    assert square.cache_key(3) == KeyBuilder(power)((3, 2), {}) == "{tests.test_keys.power}(3, 2)"
    assert square.cache_key(3) != cube.cache_key(3)
    assert square.__name__ == "power"
    assert encode_value(functools.partial(power, 2)) == (
        "functools.partial(<function tests.test_keys.power>, (2,), {})"
    )
    with pytest.raises(TypeError, match="cannot cache a lambda"):
        cached_for(stack=stack)(functools.partial(lambda x, y: x, 1))
    with pytest.raises(TypeError, match="memory address"):
        cached_for(stack=stack)(functools.partial(power, Opaque()))


DELIMITERS = "',)({}[]=:<>\"\\ #."
texts = st.text(st.sampled_from(DELIMITERS) | st.characters(), max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.integers()
    | st.floats(allow_nan=True)
    | st.sampled_from([0.0, -0.0, 1.0, float("nan"), float("inf")])
    | texts
    | st.binary(max_size=4)
)
hashables = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=8,
)
arguments = st.recursive(
    hashables,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.sets(hashables, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=10,
)
argument_lists = st.lists(arguments, max_size=3).map(tuple)


def identity(value: Any) -> Any:
    """What a key must distinguish, modelled without the encoder: type and value, exactly.

    ``1``, ``1.0`` and ``True`` differ (the type is part of it), ``0.0`` and ``-0.0`` differ
    (the sign is), and every NaN is the same (the contract: they share one key).
    """
    kind = type(value).__name__
    if isinstance(value, float):
        return (kind, "nan") if math.isnan(value) else (kind, value, math.copysign(1, value))
    if isinstance(value, list | tuple):
        return (kind, tuple(identity(v) for v in value))
    # Sets and dicts as multisets: a set may hold two NaN objects.
    if isinstance(value, set | frozenset):
        return (kind, frozenset(Counter(identity(v) for v in value).items()))
    if isinstance(value, dict):
        items = Counter((identity(k), identity(v)) for k, v in value.items())
        return (kind, frozenset(items.items()))
    return (kind, value)


NEAR_MISSES: list[tuple[Any, ...]] = [
    (1,),
    (1.0,),
    (True,),
    ("1",),
    (b"1",),
    ((1,),),
    ([1],),
    ({1},),
    (frozenset({1}),),
    (0.0,),
    (-0.0,),
    (float("nan"),),
    (1, 2),
    ((1, 2),),
    ([1, 2],),
    ("1, 2",),
    ("a", "b"),
    ("a', 'b",),
    ({"a": 1},),
    ({"a": (1,)},),
    ("{'a': 1}",),
    ({1: 2, 3: 4},),
    ({1: (2, 3), 4: ()},),
    ((None,),),
    ("None",),
    (None, None),
    ([], []),
    ([[]],),
    ((), ()),
    (((),),),
    (set(),),
    ({0},),
    ({False},),
    ({(1, 2)},),
    ({1, 2},),
    ("",),
    (b"",),
    ("')(",),
    (")(",),
]


def assert_keys_match_identities(calls: list[tuple[Any, ...]]) -> int:
    """Assert key equality is identity equality over every pair; return the pairs compared."""
    keys = KeyBuilder(many)
    built = [(keys(c, {}), identity(c), c) for c in calls]
    for i, (key_a, id_a, a) in enumerate(built):
        for key_b, id_b, b in built[i + 1 :]:
            assert (key_a == key_b) == (id_a == id_b), (a, b, key_a)
    return len(built) * (len(built) - 1) // 2


def test_near_misses_never_share_a_key() -> None:
    assert_keys_match_identities(NEAR_MISSES)


@given(st.lists(argument_lists, min_size=2, max_size=8))
def test_distinct_arguments_never_share_a_key(calls: list[tuple[Any, ...]]) -> None:
    assert_keys_match_identities(calls + NEAR_MISSES[:8])


@given(argument_lists)
def test_equal_arguments_give_equal_keys(a: tuple[Any, ...]) -> None:
    keys = KeyBuilder(many)
    rebuilt = copy.deepcopy(a)
    assert keys(a, {}) == keys(rebuilt, {}) == keys(tuple(reversed(a))[::-1], {})


def one(a: Any) -> None:
    """One positional parameter: its key function is spelt out (stratacache.keyshapes)."""


def two(a: Any, b: Any) -> None:
    """Two positional parameters: the same."""


shape_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary()
    | st.text(min_size=MAX_KEY_LENGTH, max_size=MAX_KEY_LENGTH + 20)  # past the bound
    | st.tuples(st.integers())
    | st.sampled_from([Color.RED, Point(1, 2), 1.5j, -0.0, math.nan])
)


@pytest.mark.parametrize("func", [one, two], ids=["one", "two"])
def test_a_specialised_key_function_is_chosen_for_one_or_two_positionals(func: Any) -> None:
    assert KeyBuilder(func).build.__qualname__.startswith("specialised.")
    assert not KeyBuilder(plain).build.__qualname__.startswith("specialised."), "a default"
    assert not KeyBuilder(f).build.__qualname__.startswith("specialised.")


@given(st.lists(shape_values, min_size=2, max_size=2))
def test_the_specialised_key_functions_give_the_general_keys(values: list[Any]) -> None:
    # The general key of one call, from the binding path (keywords), and the key text the
    # module docstring defines: both must be what the specialised function returns.
    for func, args in ((one, tuple(values[:1])), (two, tuple(values))):
        keys = KeyBuilder(func)
        head = "{tests.test_keys." + func.__name__ + "}"
        by_keyword = keys((), dict(zip("ab", args, strict=False)))
        assert keys(args, {}) == by_keyword
        assert keys(args[:1], dict(zip("b", args[1:], strict=False))) == by_keyword
        text = head + encode_value(args)
        assert by_keyword == (text if len(text) <= MAX_KEY_LENGTH else by_keyword)
        assert len(by_keyword) <= MAX_KEY_LENGTH + 80


def test_the_specialised_key_functions_refuse_what_the_general_one_refuses() -> None:
    for func, args in ((one, (Opaque(),)), (two, (1, Opaque()))):
        with pytest.raises(TypeError, match="stable cache key"):
            KeyBuilder(func)(args, {})
    with pytest.raises(TypeError):
        KeyBuilder(one)((1, 2), {})  # too many: the signature's error, as before
