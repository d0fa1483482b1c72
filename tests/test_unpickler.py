"""The restricted unpickler (CACHE_PICKLE_ALLOW): hostile globals are refused, values load."""

from __future__ import annotations

import builtins
import collections
import dataclasses
import datetime
import decimal
import logging
import os
import pickle
import subprocess
import uuid
import zoneinfo
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratacache import (
    CacheStack,
    ConfigurationError,
    DeserializationError,
    JsonSerializer,
    cached_for,
)
from stratacache.settings import CacheSettings
from stratacache.unpickling import SAFE_GLOBALS, GlobalRefused, RestrictedPickleSerializer
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCache, RedisCacheNoExceptions

HERE = __name__  # this module: the application's "models" in these tests


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Order:
    id: int
    placed: datetime.datetime
    total: decimal.Decimal
    tags: list[str]


class Exploit:
    """A value whose unpickling calls ``target(*args)``: what an attacker plants."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.target, self.args = target, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.target, self.args)


def stack_global(module: str, name: str, *, call: bool = False) -> bytes:
    """A protocol 4 pickle of the global ``module.name`` (called with no argument if asked)."""

    def text(s: str) -> bytes:
        data = s.encode()
        return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE

    body = text(module) + text(name) + b"\x93"  # STACK_GLOBAL
    if call:
        body += b")R"  # EMPTY_TUPLE, REDUCE
    return b"\x80\x04" + body + b"."


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "canary"


def hostile_pickles(canary: Path) -> dict[str, bytes]:
    """Pickles that would run code, by the trick each plays."""
    touch = f"touch {canary}"
    return {
        "os.system": pickle.dumps(Exploit(os.system, touch)),
        "subprocess.Popen": pickle.dumps(Exploit(subprocess.Popen, ["touch", str(canary)])),
        "builtins.eval": pickle.dumps(
            Exploit(builtins.eval, f"open({str(canary)!r}, 'w').close()")
        ),
        "builtins.exec": pickle.dumps(Exploit(builtins.exec, f"import os; os.system({touch!r})")),
        "getattr(module)": (
            b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'"
            + touch.encode()
            + b"'\ntR."
        ),
        "getattr(allowed class)": (b"cbuiltins\ngetattr\n(cdatetime\ndatetime\nS'__reduce__'\ntR."),
        "dunder path": stack_global("datetime", "datetime.__class__.__subclasses__", call=True),
        "module under an allowed name": stack_global(HERE, "os.getcwd", call=True),
        "nested in allowed values": pickle.dumps(
            collections.OrderedDict(
                a=[1, {"b": (Point(1, 2), Exploit(os.system, touch))}],
            )
        ),
        "uuid's command runner": stack_global("uuid", "_get_command_stdout"),
        "python 2 names": b"c__builtin__\neval\n(S'1+1'\ntR.",
    }


def test_the_hostile_pickles_are_live_with_plain_pickle(canary: Path) -> None:
    """The control: plain pickle runs them, so the refusals below can fail."""
    pickle.loads(hostile_pickles(canary)["os.system"])
    assert canary.exists()


@pytest.mark.parametrize("trick", list(hostile_pickles(Path("x"))))
def test_a_hostile_pickle_is_refused_and_runs_nothing(trick: str, canary: Path) -> None:
    serializer = RestrictedPickleSerializer([HERE])
    with pytest.raises(GlobalRefused, match="refusing to unpickle") as info:
        serializer.loads(hostile_pickles(canary)[trick])
    assert isinstance(info.value, DeserializationError)
    assert not canary.exists()


def test_the_refusal_names_the_global_the_setting_and_the_fix() -> None:
    with pytest.raises(GlobalRefused) as info:
        RestrictedPickleSerializer(["myapp.models"]).loads(pickle.dumps(Exploit(os.getcwd)))
    text = str(info.value)
    assert f"{os.getcwd.__module__}.getcwd" in text
    assert "CACHE_PICKLE_ALLOW=['myapp.models']" in text
    assert f"add {os.getcwd.__module__!r} to CACHE_PICKLE_ALLOW" in text


def test_names_match_by_dotted_prefix_not_by_string_prefix() -> None:
    serializer = RestrictedPickleSerializer(["tests.test_unpick"])  # a prefix of HERE's text
    with pytest.raises(GlobalRefused):
        serializer.loads(pickle.dumps(Point(1, 2)))
    assert RestrictedPickleSerializer(["tests"]).loads(pickle.dumps(Point(1, 2))) == Point(1, 2)
    one_class = RestrictedPickleSerializer([f"{HERE}.Point"])
    assert one_class.loads(pickle.dumps(Point(1, 2))) == Point(1, 2)
    with pytest.raises(GlobalRefused):
        one_class.loads(
            pickle.dumps(Order(1, datetime.datetime(2024, 1, 1), decimal.Decimal(1), []))
        )


ORDINARY = {
    "dict and list": {"a": [1, 2.5, None, True], "b": ("t", b"bytes", bytearray(b"x"))},
    "sets": [{1, 2}, frozenset({"a"})],
    "numbers": [1j, 10**40, -0.0, range(3), slice(1, 5)],
    "datetimes": [
        datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
        datetime.datetime(2024, 5, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        datetime.date(2024, 5, 1),
        datetime.time(8, 15),
        datetime.timedelta(days=2),
        datetime.timezone(datetime.timedelta(hours=-5), "EST"),
    ],
    "decimal": decimal.Decimal("12.3400"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "collections": [
        collections.OrderedDict(a=1),
        collections.defaultdict(list, {"k": [1]}),
        collections.deque([1, 2], maxlen=5),
        collections.Counter("abracadabra"),
        collections.ChainMap({"a": 1}, {"b": 2}),
    ],
    "namedtuple": Point(3, 4),
    "dataclass": Order(7, datetime.datetime(2024, 1, 2, 3, 4), decimal.Decimal("9.99"), ["x"]),
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("kind", list(ORDINARY))
def test_ordinary_values_load_under_every_protocol(kind: str, protocol: int) -> None:
    value = ORDINARY[kind]
    assert RestrictedPickleSerializer([HERE]).loads(pickle.dumps(value, protocol)) == value


def test_the_application_classes_need_their_module_listed() -> None:
    with pytest.raises(GlobalRefused, match=rf"{HERE}\.Point"):
        RestrictedPickleSerializer().loads(pickle.dumps(Point(1, 2)))


def test_the_safe_default_set_holds_no_callable_that_runs_code() -> None:
    assert not {"builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__"} & (
        SAFE_GLOBALS
    )
    assert not any(name.startswith(("os.", "subprocess.", "sys.")) for name in SAFE_GLOBALS)


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False)
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.uuids(),
    lambda inner: (
        st.lists(inner)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | st.integers(), inner)
        | st.frozensets(st.integers() | st.text())
    ),
    max_leaves=20,
)


@given(value=plain, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_any_plain_value_loads_as_plain_pickle_loads_it(value: Any, protocol: int) -> None:
    data = pickle.dumps(value, protocol)
    assert RestrictedPickleSerializer().loads(data) == pickle.loads(data)


# -- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "parsed"),
    [
        ('["myapp.models", "fractions"]', ("myapp.models", "fractions")),
        ("myapp.models, fractions", ("myapp.models", "fractions")),
        ("[]", ()),
        (["myapp.models.User"], ("myapp.models.User",)),
    ],
)
def test_the_allow_list_setting_takes_json_or_commas(given_value: Any, parsed: tuple[str]) -> None:
    settings = CacheSettings.from_mapping({"CACHE_PICKLE_ALLOW": given_value})
    assert settings.cache_pickle_allow == parsed


def test_unset_means_no_restriction() -> None:
    assert CacheSettings.from_mapping({}).cache_pickle_allow is None


@pytest.mark.parametrize(
    ("given_value", "message"),
    [
        ('["myapp models"]', "'myapp models' is not a dotted module or object name"),
        ("[not json", "not a JSON list"),
        (42, "must be a list of module names"),
    ],
)
def test_a_bad_allow_list_names_the_key_and_the_entry(given_value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match="CACHE_PICKLE_ALLOW") as info:
        CacheSettings.from_mapping({"CACHE_PICKLE_ALLOW": given_value})
    assert message in str(info.value)


def test_the_allow_list_with_another_serializer_is_refused_at_configure(redis_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CacheStack().configure(
            {
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_URL": redis_url,
                "CACHE_SERIALIZER": "json",
                "CACHE_PICKLE_ALLOW": ["myapp"],
            }
        )
    assert (
        "CACHE_PICKLE_ALLOW=['myapp']: it restricts what pickle loads, but"
        " CACHE_SERIALIZER='json' is not pickle"
    ) in str(info.value)


class JsonFiles(FileSystemCache):
    """A backend that declares its own serializer, as cachelib's subclasses do."""

    serializer = JsonSerializer()


def test_a_tier_reading_with_its_own_serializer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        CacheStack().configure(
            {
                "CACHE_LAYERS": [
                    {"type": "SimpleCache"},
                    {"type": f"{HERE}.JsonFiles", "name": "files", "dir": str(tmp_path)},
                ],
                "CACHE_PICKLE_ALLOW": [],
            }
        )
    assert "the tier 'files'" in str(info.value)
    assert "not pickle" in str(info.value)


def test_only_the_tiers_outside_the_process_are_restricted(redis_url: str) -> None:
    stack = CacheStack()
    stack.configure(
        {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, "CACHE_PICKLE_ALLOW": [HERE]}
    )
    shared = stack.shared_cache.cache.serializer
    assert isinstance(shared, RestrictedPickleSerializer)
    assert shared.allow.allowed == (HERE,)
    assert not isinstance(stack.local_cache.cache.serializer, RestrictedPickleSerializer)


# -- a refused global in a tier: an unreadable entry ---------------------------------------------


def _stack(options: dict[str, Any]) -> CacheStack:
    stack = CacheStack()
    stack.configure({"LOCALCACHE_TYPE": "NullCache", "CACHE_PICKLE_ALLOW": [HERE], **options})
    return stack


def test_no_exceptions_deletes_logs_and_counts_a_refused_entry_then_recomputes(
    redis_url: str, canary: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack = _stack({"CACHE_TYPE": "RedisCacheNoExceptions", "CACHE_REDIS_URL": redis_url})
    backend = stack.shared_cache.cache
    assert isinstance(backend, RedisCacheNoExceptions)
    calls: list[int] = []

    @cached_for(minutes=1, stack=stack)
    def point(x: int) -> Point:
        calls.append(x)
        return Point(x, x)

    backend.client.set(point.cache_key(1), hostile_pickles(canary)["os.system"])
    with caplog.at_level(logging.WARNING):
        assert point(1) == Point(1, 1)
    assert "refusing to unpickle" in caplog.text
    assert point(1) == Point(1, 1)  # the entry written back loads: Point's module is allowed
    assert calls == [1]
    assert not canary.exists()
    assert stack.stats()["layers"]["shared"]["deserialization_failures"] == 1


def test_the_file_system_cache_reads_a_refused_entry_as_a_miss(
    tmp_path: Path, canary: Path
) -> None:
    stack = _stack({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "c")})
    backend = stack.shared_cache.cache
    backend.set("k", Exploit(os.system, f"touch {canary}"))  # written by a plain pickle
    assert stack.get("k") is None
    assert not canary.exists()
    assert backend.stats.deserialization_failures == 1


def test_redis_cache_raises_its_documented_error_for_a_refused_entry(
    redis_url: str, canary: Path
) -> None:
    stack = _stack({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url})
    backend = stack.shared_cache.cache
    assert isinstance(backend, RedisCache)
    backend.client.set("k", hostile_pickles(canary)["subprocess.Popen"])
    with pytest.raises(GlobalRefused):
        backend.get("k")
    assert not canary.exists()
    assert backend.stats.deserialization_failures == 1
