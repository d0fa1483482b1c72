"""The built-in serializers and CACHE_SERIALIZER."""

from __future__ import annotations

import ast
import json
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from cachelib import serializers as cachelib_serializers
from hypothesis import given
from hypothesis import strategies as st

from stratacache import (
    CacheStack,
    DeserializationError,
    JsonSerializer,
    PickleSerializer,
    SerializationError,
)
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCache
from stratacache_plugins.simple import SimpleCache

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_both_round_trip_json_values(value: Any) -> None:
    assert PickleSerializer().loads(PickleSerializer().dumps(value)) == value
    assert JsonSerializer().loads(JsonSerializer().dumps(value)) == value


def test_pickle_uses_the_highest_protocol() -> None:
    assert PickleSerializer().dumps([1])[1] == pickle.HIGHEST_PROTOCOL


@pytest.mark.parametrize("value", [lambda: 1, threading.Lock()], ids=["lambda", "lock"])
def test_unpicklable_values_raise_serialization_error(value: Any) -> None:
    with pytest.raises(SerializationError, match="cannot pickle a value of type"):
        PickleSerializer().dumps(value)


@pytest.mark.parametrize(
    "data", [b"", b"garbage", pickle.dumps({"a": 1})[:-3], b"\x80\x63not.a.module\nThing\n."]
)
def test_unreadable_pickles_raise_deserialization_error(data: bytes) -> None:
    with pytest.raises(DeserializationError) as info:
        PickleSerializer().loads(data)
    assert isinstance(info.value, pickle.UnpicklingError)
    assert info.value.__cause__ is not None


def test_json_refuses_non_json_values_and_bytes() -> None:
    with pytest.raises(SerializationError, match="as JSON"):
        JsonSerializer().dumps({1, 2})
    with pytest.raises(SerializationError):
        JsonSerializer().dumps(float("nan"))
    with pytest.raises(DeserializationError, match="not valid JSON"):
        JsonSerializer().loads(pickle.dumps("x"))


def test_cache_serializer_json_reaches_the_shared_layer(tmp_path: Path) -> None:
    stack = CacheStack()
    stack.configure(
        {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path), "CACHE_SERIALIZER": "json"}
    )
    stack.set("rates", {"USD": 1.08})
    (entry,) = tmp_path.glob("*.entry")
    assert entry.read_bytes().endswith(json.dumps({"USD": 1.08}, separators=(",", ":")).encode())
    assert isinstance(stack.shared_cache.cache.serializer, JsonSerializer)
    assert isinstance(stack.local_cache.cache.serializer, PickleSerializer), "local stays pickle"


# -- cachelib serializers: a subclass's class attribute, an assignment (issue 11) ----------


class _ReprSerializer(cachelib_serializers.BaseSerializer):
    def dumps(self, value: Any, protocol: int | None = None) -> bytes:
        return repr(value).encode()

    def loads(self, bvalue: bytes) -> Any:
        return ast.literal_eval(bvalue.decode())


class _ReprFileSerializer(cachelib_serializers.BaseSerializer):
    def dump(self, value: Any, f: Any, protocol: int | None = None) -> None:
        f.write(repr(value).encode())

    def load(self, f: Any) -> Any:
        return ast.literal_eval(f.read().decode())


class _ReprSimpleCache(SimpleCache):
    serializer = _ReprSerializer()


class _ReprFileSystemCache(FileSystemCache):
    serializer = _ReprFileSerializer()


def test_a_subclass_serializer_attribute_is_the_backends_serializer() -> None:
    cache = _ReprSimpleCache()
    assert cache.set("k", (1, "a"))
    assert cache._cache["k"][1] == b"(1, 'a')"  # not pickle: the class's serializer wrote it
    assert cache.get("k") == (1, "a")
    assert isinstance(cache.serializer, _ReprSerializer)
    assert isinstance(_ReprSimpleCache.serializer, _ReprSerializer)
    assert isinstance(SimpleCache.serializer, PickleSerializer)  # the base is untouched
    assert isinstance(SimpleCache().serializer, PickleSerializer)


def test_serializer_given_to_the_constructor_wins_over_the_class_attribute() -> None:
    cache = _ReprSimpleCache(serializer=JsonSerializer())
    cache.set("k", [1])
    assert cache._cache["k"][1] == b"[1]"


def test_filesystem_uses_a_cachelib_serializers_file_interface(tmp_path: Path) -> None:
    cache = _ReprFileSystemCache(str(tmp_path))
    assert cache.set("k", {"a": 1})
    stored = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and b"{" in p.read_bytes()]
    assert len(stored) == 1
    assert stored[0].endswith(b"{'a': 1}")
    assert cache.get("k") == {"a": 1}


def test_assigning_a_serializer_takes_effect_at_once() -> None:
    cache = SimpleCache()
    cache.serializer = cachelib_serializers.JSONSerializer()
    assert cache.set("k", {"a": [1, 2]})
    assert cache._cache["k"][1] == b'{"a": [1, 2]}'
    assert cache.get("k") == {"a": [1, 2]}
    assert isinstance(cache.serializer, cachelib_serializers.JSONSerializer)


def test_a_cachelib_serializers_none_is_a_serialization_error() -> None:
    cache = SimpleCache(serializer=cachelib_serializers.JSONSerializer())  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="returned NoneType"):
        cache.set("k", b"bytes are not JSON")
    assert not cache.has("k")


def test_a_non_serializer_is_refused() -> None:
    with pytest.raises(TypeError, match="is not a serializer"):
        SimpleCache(serializer=object())  # type: ignore[arg-type]


def test_redis_subclass_serializer_attribute(redis_url: str) -> None:
    class ReprRedisCache(RedisCache):
        serializer = _ReprSerializer()

    cache = ReprRedisCache(redis_url, key_prefix="t:")
    assert cache.set("k", ("x", 2.5))
    assert cache.client.get("t:k") == b"('x', 2.5)"
    assert cache.get("k") == ("x", 2.5)
    assert cache.inc("n", 3) == 3  # integers stay digits for INCRBY
    assert cache._write_client is cache.client
