"""A lost invalidation channel never leaves a stale local copy: kill -9, SIGSTOP and CLIENT
KILL of a redis-server the test started, while another instance writes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stratacache import NO_VALUE, CacheStack
from stratacache_plugins.rediscache.listener import HEALTH_INTERVAL
from tests.redis_server import RedisServer
from tests.reliability.figures import record
from tests.test_invalidation import gone_within, instance, local, subscribed

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unsigned pickles

READ_TIMEOUT = 1.0  # CACHE_REDIS_READ_TIMEOUT's default
DETECTED = HEALTH_INTERVAL + READ_TIMEOUT + 1.0  # a frozen server is found within this


@pytest.fixture
def two(
    make_redis_server: Callable[[], RedisServer],
) -> Iterator[tuple[RedisServer, CacheStack, CacheStack]]:
    """A redis-server of the test's own, and two subscribed instances on it."""
    server = make_redis_server()
    a, b = instance(server.url), instance(server.url)
    subscribed(a)
    subscribed(b)
    yield server, a, b
    a.close()
    b.close()


def coherent_again(a: CacheStack, b: CacheStack, value: str) -> None:
    """B's write of ``value`` drops A's copy: the channel works again."""
    subscribed(b)
    b.set("k", value)
    gone_within(lambda: local(a, "k") is NO_VALUE)
    assert a.get("k") == value


def channel(stack: CacheStack) -> Any:
    return stack.stats()["invalidation"]


def until(check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout
        time.sleep(0.005)
    return time.monotonic() - start


def test_kill_9_flushes_and_it_resubscribes_when_the_server_is_back(
    two: tuple[RedisServer, CacheStack, CacheStack],
) -> None:
    server, a, b = two
    a.set("k", "before the loss")
    assert local(a, "k") == "before the loss"
    server.kill()
    lost = until(lambda: channel(a)["state"] == "lost", DETECTED)
    assert local(a, "k") is NO_VALUE  # nothing cached before the loss is served
    assert channel(a)["flushes_after_loss"] == 1
    server.start()
    back = until(lambda: channel(a)["state"] == "subscribed", 5.0)
    record(
        301,
        "kill -9 of the server, then a restart",
        requirement="the local copy is flushed once the loss is seen; subscribed again when"
        " the server is back, after a second flush; then another instance's write drops the"
        " copy",
        figures={"loss_seen_ms": round(lost * 1000), "resubscribed_ms": round(back * 1000)},
    )
    assert channel(a)["flushes_after_loss"] == 2  # what was cached during the loss goes too
    assert a.get("k") is None  # the restarted server lost it
    a.set("k", "mine")
    coherent_again(a, b, "theirs")


def test_sigstop_is_found_within_a_bounded_time(
    two: tuple[RedisServer, CacheStack, CacheStack],
) -> None:
    server, a, b = two
    a.set("k", "before the freeze")
    server.pause()
    try:
        lost = until(lambda: channel(a)["state"] == "lost", DETECTED)
        assert local(a, "k") is NO_VALUE
    finally:
        server.resume()
    back = until(lambda: channel(a)["state"] == "subscribed", 5.0)
    record(
        302,
        "SIGSTOP of the server, SIGCONT after the loss is seen",
        requirement=f"the loss is seen within {DETECTED:g} s (a PING unanswered), the local"
        " copy flushed; subscribed again after SIGCONT",
        figures={"loss_seen_ms": round(lost * 1000), "resubscribed_ms": round(back * 1000)},
    )
    assert a.get("k") == "before the freeze"  # Redis kept it: a fresh read, not a stale copy
    coherent_again(a, b, "after the freeze")


def test_writes_while_the_subscriber_is_cut_off_are_not_missed(
    two: tuple[RedisServer, CacheStack, CacheStack],
) -> None:
    server, a, b = two
    rounds, took, stale = 20, [], []
    for round_ in range(rounds):
        b.set("k", f"v{round_}")
        wanted = f"v{round_}"
        # Within the window, A reads it and keeps a copy (a fill that raced B's message
        # is skipped, so it may take two reads).
        until(lambda: a.get("k") == wanted and local(a, "k") == wanted, 2.0)  # noqa: B023
        flushes = channel(a)["flushes_after_loss"]
        server.client().client_kill_filter(_type="pubsub")  # every subscriber's connection
        b.set("k", f"w{round_}")  # while A may not listen: its message may be lost

        def back(flushes: int = flushes) -> bool:  # A saw the loss, and is subscribed again
            return channel(a)["flushes_after_loss"] == flushes + 2 and channel(b)["state"] == (
                "subscribed"
            )

        took.append(until(back, 5.0))
        if a.get("k") != f"w{round_}":
            stale.append(round_)
    record(
        303,
        "CLIENT KILL of the subscribers, with a write in the gap",
        requirement="after the subscriber reports itself subscribed again, no read returns"
        " a value older than the last completed write",
        figures={
            "rounds": rounds,
            "stale_reads": len(stale),
            "resubscribed_ms_max": round(max(took) * 1000),
        },
    )
    assert stale == [], f"stale reads after resubscribing, in rounds {stale}"


def test_a_quiet_channel_is_checked_not_lost(make_redis_server: Callable[[], RedisServer]) -> None:
    server = make_redis_server()
    a = instance(server.url)
    subscribed(a)
    a.set("k", "kept")
    server.reset_stats()
    time.sleep(4 * HEALTH_INTERVAL)  # silence: the listener PINGs, and the PONGs come back
    assert server.command_counts().get("ping", 0) >= 2
    assert channel(a) == {
        "state": "subscribed",
        "received": 0,
        "keys_dropped": 0,
        "flushes_after_loss": 0,
    }
    assert local(a, "k") == "kept"
    a.close()
