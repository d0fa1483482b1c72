"""Auto-recovery re-checks the local copies written while Redis was unreachable.

A value computed during an outage lives only in the local tier above Redis; once Redis is
back, another instance may write a newer value there. Real faults on real redis-servers
(SIGKILL, SIGSTOP); the other instance is a second stack on the same server, with the
invalidation channel off (``CACHE_INVALIDATION=off``) unless the test says otherwise, so
that only auto-recovery can drop the copy. Each function returns its source of truth,
which the other instance changes with its write: a read after recovery may recompute (the
first call may still find a dead connection), and must never return the local copy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from stratacache import NO_VALUE, CacheStack, cached_for
from tests.redis_server import RedisServer
from tests.test_recovery import configure, shared_counts, shared_tier, wait_replayed

ServerFactory = Callable[[], RedisServer]

OUTAGE = "computed during the outage"
NEWER = "written by another instance after it"

FAULTS = {
    "kill -9": (lambda server: server.kill(), lambda server: server.start()),
    "SIGSTOP": (lambda server: server.pause(), lambda server: server.resume()),
}


def local(stack: CacheStack, key: str) -> Any:
    """What the stack's local tier holds under ``key`` (``NO_VALUE`` if nothing)."""
    return stack.local_cache.cache.lookup(key)


def rechecks(stack: CacheStack) -> list[str]:
    recovery = shared_tier(stack).recovery
    assert recovery is not None
    return recovery.rechecks()


def other_instance(server: RedisServer) -> CacheStack:
    """A second instance on the server, configured once it answers again."""
    stack = CacheStack()
    configure(stack, server, CACHE_INVALIDATION="off")
    return stack


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_value_computed_during_an_outage_is_rechecked_after_recovery(
    make_redis_server: ServerFactory, fault: str
) -> None:
    server = make_redis_server()
    a = CacheStack()
    configure(
        a,
        server,
        CACHE_INVALIDATION="off",
        CACHE_REDIS_READ_TIMEOUT=0.2,
        CACHE_REDIS_CONNECT_TIMEOUT=0.2,
    )
    source = [OUTAGE]

    @cached_for(seconds=120, stack=a)
    def profile(user: int) -> str:
        return source[0]

    key = profile.cache_key(1)
    begin, end = FAULTS[fault]
    begin(server)
    try:
        assert profile(1) == OUTAGE  # Redis missed the write: the local copy only
        assert local(a, key) == OUTAGE
        assert rechecks(a) == [key]
        assert profile(1) == OUTAGE, "during the outage the local copy still serves"
    finally:
        end(server)
    b = other_instance(server)
    source[0] = NEWER
    assert b.set(key, NEWER)
    wait_replayed(a)
    assert local(a, key) is NO_VALUE
    reads = [profile(1) for _ in range(50)]
    assert reads.count(OUTAGE) == 0, "0 stale reads after recovery"
    assert set(reads) == {NEWER}
    assert shared_counts(a)["recovery_rechecked"] == 1
    assert shared_counts(a)["recovery_queued"] == 0  # nothing to replay: no invalidation
    a.close()
    b.close()


def test_without_recovery_the_local_copy_outlives_the_outage(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    a = CacheStack()
    configure(a, server, CACHE_INVALIDATION="off", CACHE_RECOVERY_MAX=0)

    source = [OUTAGE]

    @cached_for(seconds=120, stack=a)
    def profile(user: int) -> str:
        return source[0]

    server.kill()
    assert profile(1) == OUTAGE
    server.start()
    b = other_instance(server)
    source[0] = NEWER
    assert b.set(profile.cache_key(1), NEWER)
    time.sleep(0.3)  # past the back-off: Redis is in use again
    assert profile(1) == OUTAGE, "what the recheck is for: the stale copy is served"
    a.close()
    b.close()


def test_async_a_value_computed_during_an_outage_is_rechecked(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    a = CacheStack()
    configure(a, server, CACHE_INVALIDATION="off")

    source = [OUTAGE]

    async def scenario() -> list[str]:
        @cached_for(seconds=120, stack=a)
        async def profile(user: int) -> str:
            return source[0]

        key = profile.cache_key(1)
        server.kill()
        assert await profile(1) == OUTAGE
        assert rechecks(a) == [key]
        server.start()
        b = other_instance(server)
        source[0] = NEWER
        assert await b.aset(key, NEWER)
        await asyncio.to_thread(wait_replayed, a)
        reads = [await profile(1) for _ in range(50)]
        b.close()
        return reads

    reads = asyncio.run(scenario())
    assert set(reads) == {NEWER}, "0 stale reads after recovery"
    assert shared_counts(a)["recovery_rechecked"] == 1
    a.close()


def test_past_the_limit_the_rechecks_become_one_flush_of_the_local_tier(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    a = CacheStack()
    configure(a, server, CACHE_INVALIDATION="off", CACHE_RECOVERY_MAX=2)

    @cached_for(seconds=120, stack=a)
    def profile(user: int) -> str:
        return f"{OUTAGE} {user}"

    assert profile(0) == f"{OUTAGE} 0"  # before the outage: in Redis and here
    server.kill()
    for user in (1, 2, 3):
        profile(user)
    assert rechecks(a) == []  # folded into one flush
    assert shared_counts(a)["recovery_dropped"] == 2
    assert local(a, profile.cache_key(3)) == f"{OUTAGE} 3"
    server.start()
    wait_replayed(a)
    for user in range(4):  # the documented price: the copy of 0 went too (a miss)
        assert local(a, profile.cache_key(user)) is NO_VALUE
    assert shared_counts(a)["recovery_rechecked"] == 0
    a.close()


def test_with_the_channel_on_its_flush_covers_the_rechecks(
    make_redis_server: ServerFactory,
) -> None:
    """The channel's flushes (on the loss, and once it listens again) drop the copies: the
    recheck waits for them while the channel is lost, and is not done a second time."""
    server = make_redis_server()
    a = CacheStack()
    configure(a, server, CACHE_INVALIDATION="on")
    source = [OUTAGE]

    @cached_for(seconds=120, stack=a)
    def profile(user: int) -> str:
        return source[0]

    key = profile.cache_key(1)
    until(lambda: a.stats()["invalidation"]["state"] == "subscribed")
    server.kill()
    until(lambda: a.stats()["invalidation"]["state"] == "lost")
    assert profile(1) == OUTAGE
    assert rechecks(a) == [key]
    server.start()
    b = other_instance(server)
    source[0] = NEWER
    assert b.set(key, NEWER)
    until(lambda: a.stats()["invalidation"]["state"] == "subscribed")
    wait_replayed(a)
    assert local(a, key) is NO_VALUE
    assert shared_counts(a)["recovery_rechecked"] == 0, "the flush did it, once"
    assert a.stats()["invalidation"]["flushes_after_loss"] == 2
    assert profile(1) == NEWER
    a.close()
    b.close()


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_write_refused_while_redis_answers_is_not_an_outage(
    make_redis_server: ServerFactory,
) -> None:
    """OOM (maxmemory, noeviction): Redis refuses the write and serves the rest; the local
    copy stays, or each read would recompute while it lasts."""
    server = make_redis_server()
    a = CacheStack()
    configure(a, server, CACHE_INVALIDATION="off")

    @cached_for(seconds=120, stack=a)
    def profile(user: int) -> str:
        return OUTAGE

    with server.client() as raw:
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", 1)
        try:
            assert profile(1) == OUTAGE
            assert shared_counts(a)["recovery_rechecked"] == 0
            assert rechecks(a) == []
            assert raw.exists(profile.cache_key(1)) == 0, "Redis refused the write"
        finally:
            raw.config_set("maxmemory", 0)
    assert local(a, profile.cache_key(1)) == OUTAGE
    a.close()
