"""The listener knows a stack's own messages by their first bytes, without decoding them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stratacache_plugins.rediscache.invalidation import decode, encode
from stratacache_plugins.rediscache.subscription import Subscription

origins = st.from_regex(r"\A[0-9a-f]{12}:[0-9]{1,4}\Z")
ops = st.sampled_from(["k", "g", "t", "a"])
keys = st.lists(st.text(max_size=20), max_size=3)


def sent(origin: str, data: bytes | str) -> bool:
    """Whether a subscription whose receiver has ``origin`` takes ``data`` for its own."""
    subscription: Any = SimpleNamespace(receiver=SimpleNamespace(origin=origin))
    return Subscription.sent(subscription, data)


@given(origins, origins, ops, keys)
def test_a_message_is_its_own_exactly_when_its_origin_is(
    mine: str, sender: str, op: Any, names: list[str]
) -> None:
    data = encode(sender, op, "mod.f", names)
    own = decode(data)
    assert own is not None
    expected = own.origin == mine
    assert sent(mine, data) is expected
    assert sent(mine, data.decode()) is expected, "decode_responses=True"


def test_a_longer_serial_of_the_same_process_is_not_its_own() -> None:
    data = encode("abcdef123456:12", "k", None, ["x"])
    assert not sent("abcdef123456:1", data)
    assert sent("abcdef123456:12", data)


def test_something_not_ours_is_never_taken_for_an_echo() -> None:
    for data in (b"", b"[", b"not json", b'["abcdef123456:1"]'):
        assert not sent("abcdef123456:2", data)
