"""The built-in serializers and CACHE_SERIALIZER."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratacache import (
    CacheStack,
    DeserializationError,
    JsonSerializer,
    PickleSerializer,
    SerializationError,
)

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
