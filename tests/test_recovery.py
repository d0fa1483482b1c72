"""Auto-recovery: invalidations made while Redis is unreachable take effect after recovery.

Real faults on real redis-servers: the server saves its data, is killed with SIGKILL (or
stopped with SIGSTOP), and comes back with the entries it had, stale ones included, as a
Redis with persistence would. Each test counts the stale reads after recovery: there must
be none in the process that invalidated, and none in another process once the replay ran.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stratacache import CacheStack, cached_for
from stratacache.recovery import ALL
from stratacache.tier import Tier
from tests import recovery_peer
from tests.conftest import clean_env, root_pythonpath
from tests.redis_server import RedisServer

ServerFactory = Callable[[], RedisServer]


def shared_tier(stack: CacheStack) -> Tier:
    return stack._layers().every[-1]


def shared_counts(stack: CacheStack) -> dict[str, int]:
    counts = stack.stats()["layers"]["shared"]
    return {k: v for k, v in counts.items() if k.startswith("recovery_")}  # type: ignore[misc]


def configure(stack: CacheStack, server: RedisServer, **more: Any) -> None:
    stack.configure(
        {
            "CACHE_TYPE": "RedisCacheNoExceptions",
            "CACHE_REDIS_URL": server.url,
            "CACHE_OPTIONS": {"retry_interval": 0.1},
            **more,
        }
    )


def crash_keeping_data(server: RedisServer) -> None:
    """SAVE, then SIGKILL: the restarted server loads the entries it had."""
    server.client().save()
    server.kill()


def wait_replayed(stack: CacheStack, seconds: float = 10.0) -> float:
    """Wait until the shared tier's queue is empty; return when (``time.monotonic()``)."""
    recovery = shared_tier(stack).recovery
    assert recovery is not None
    deadline = time.monotonic() + seconds
    while recovery.pending:
        assert time.monotonic() < deadline, f"never replayed: {recovery.queued()}"
        time.sleep(0.005)
    return time.monotonic()


INVALIDATIONS: dict[str, Callable[[CacheStack, Any], Any]] = {
    "invalidate": lambda stack, f: f.invalidate(1),
    "clear_cache": lambda stack, f: f.clear_cache(),
    "invalidate_tags": lambda stack, f: stack.invalidate_tags("user:1"),
    "cache.delete": lambda stack, f: stack.delete(f.cache_key(1)),
    "cache.clear": lambda stack, f: stack.clear(),
}


@pytest.mark.parametrize("how", list(INVALIDATIONS))
def test_an_invalidation_during_an_outage_takes_effect_after_recovery(
    make_redis_server: ServerFactory, how: str
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    configure(stack, server)
    version = ["v1"]

    @cached_for(seconds=120, tags=["user:{user}"], stack=stack)
    def profile(user: int) -> str:
        return version[0]

    assert profile(1) == "v1"
    key = profile.cache_key(1)
    assert server.client().exists(key)
    crash_keeping_data(server)
    version[0] = "v2"
    INVALIDATIONS[how](stack, profile)
    assert shared_counts(stack)["recovery_queued"] == 1
    server.start()
    # The stale entry is back with the server (test_without_recovery_the_invalidated_entry_
    # comes_back shows it): not asserted here, where the replay may already have deleted it.
    reads = [profile(1) for _ in range(50)]  # before, during and after the replay
    wait_replayed(stack)
    reads += [profile(1) for _ in range(50)]
    assert reads.count("v1") == 0, "0 stale reads after recovery"
    assert stored(server, key) in (None, "v2")
    counts = shared_counts(stack)
    assert counts["recovery_queued"] == 1
    assert counts["recovery_dropped"] == 0
    # Replayed, unless a read's write of v2 reached Redis first and superseded the delete.
    assert counts["recovery_replayed"] == 1 or stored(server, key) == "v2"


def stored(server: RedisServer, key: str) -> Any:
    """The value Redis holds under ``key`` (a plain pickle: no secret, no envelope)."""
    data = server.client().get(key)
    return None if data is None else pickle.loads(bytes(data))  # type: ignore[arg-type]


def test_without_recovery_the_invalidated_entry_comes_back(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    configure(stack, server, CACHE_RECOVERY_MAX=0)
    version = ["v1"]

    @cached_for(seconds=120, stack=stack)
    def profile(user: int) -> str:
        return version[0]

    profile(1)
    crash_keeping_data(server)
    version[0] = "v2"
    profile.invalidate(1)
    assert shared_tier(stack).recovery is None
    server.start()
    time.sleep(0.15)  # past the back-off
    assert profile(1) == "v1", "what recovery is for: the stale entry is served again"


def test_queued_invalidations_are_deduplicated_and_a_clear_covers_them(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    configure(stack, server)

    @cached_for(seconds=120, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    server.kill()
    for _ in range(3):
        f.invalidate(1)
    f.invalidate(2)
    recovery = shared_tier(stack).recovery
    assert recovery is not None
    group = recovery.queued()[0][2]
    assert recovery.queued() == [("key", f.cache_key(1), group), ("key", f.cache_key(2), group)]
    f.clear_cache()  # covers both keys
    assert recovery.queued() == [("group", group)]
    f.invalidate(3)  # covered by the group clear
    stack.clear()
    assert recovery.queued() == [ALL]
    f.invalidate(4)
    assert recovery.queued() == [ALL]
    server.start()
    wait_replayed(stack)
    assert shared_counts(stack)["recovery_replayed"] == 1


def test_past_the_limit_the_queue_becomes_one_clear_and_counts_what_it_dropped(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    configure(stack, server, CACHE_RECOVERY_MAX=3)
    version = ["old"]

    @cached_for(seconds=120, stack=stack)
    def f(x: int) -> str:
        return f"{version[0]}{x}"

    @cached_for(seconds=120, stack=stack)
    def other(x: int) -> str:
        return f"{version[0]}{x}"

    for x in range(5):
        f(x)
    other(0)
    crash_keeping_data(server)
    version[0] = "new"
    for x in range(5):
        f.invalidate(x)
    assert shared_tier(stack).recovery.queued() == [ALL]  # type: ignore[union-attr]
    assert shared_counts(stack)["recovery_dropped"] == 3
    server.start()
    assert server.client().exists(other.cache_key(0))
    wait_replayed(stack)
    assert [f(x) for x in range(5)] == [f"new{x}" for x in range(5)]
    # The documented price: the clear took entries nothing invalidated, a miss, not stale.
    assert not server.client().exists(other.cache_key(0))


def test_a_write_after_the_invalidation_supersedes_it(make_redis_server: ServerFactory) -> None:
    """The write usually lands before the replay (which waits up to 1 s by then); should the
    replay come first, it deletes the stale entry and the write still stands."""
    server = make_redis_server()
    stack = CacheStack()
    configure(stack, server)

    @cached_for(seconds=120, stack=stack)
    def f(x: int) -> str:
        return "computed"

    f(1)
    crash_keeping_data(server)
    f.invalidate(1)
    time.sleep(1.7)  # the replay's back-off reaches its longest wait (1 s)
    server.start()
    time.sleep(0.15)  # past the backend's own back-off: the next call reaches Redis
    assert f.set("written", 1)  # before the replay: it removes the queued delete
    wait_replayed(stack)
    assert f(1) == "written"
    assert stored(server, f.cache_key(1)) == "written", "the replay did not delete it"


def test_the_replay_waits_while_redis_is_paused_and_runs_when_it_answers(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    configure(stack, server, CACHE_REDIS_READ_TIMEOUT=0.2, CACHE_REDIS_CONNECT_TIMEOUT=0.2)

    @cached_for(seconds=120, stack=stack)
    def f(x: int) -> int:
        return x

    f(1)
    server.pause()
    try:
        f.invalidate(1)
        time.sleep(1.0)  # replay attempts time out, back off, and keep the entry
        recovery = shared_tier(stack).recovery
        assert recovery is not None
        assert recovery.pending
        assert shared_counts(stack)["recovery_replayed"] == 0
    finally:
        server.resume()
    wait_replayed(stack)
    assert not server.client().exists(f.cache_key(1))


def test_async_invalidation_during_an_outage_takes_effect_after_recovery(
    make_redis_server: ServerFactory,
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    configure(stack, server)
    version = ["v1"]

    async def scenario() -> None:
        @cached_for(seconds=120, tags=["user:{user}"], stack=stack)
        async def profile(user: int) -> str:
            return version[0]

        assert await profile(1) == "v1"
        crash_keeping_data(server)
        version[0] = "v2"
        await profile.invalidate(1)
        await stack.ainvalidate_tags("user:1")
        assert shared_counts(stack)["recovery_queued"] == 2
        server.start()
        reads = [await profile(1) for _ in range(50)]
        await asyncio.to_thread(wait_replayed, stack)
        reads += [await profile(1) for _ in range(50)]
        assert reads.count("v1") == 0
        assert not server.client().exists(profile.cache_key(1)) or (await profile(1)) == "v2"

    asyncio.run(scenario())
    assert shared_counts(stack)["recovery_replayed"] == 2


PEER = (
    "import sys, pathlib; from tests.recovery_peer import main;"
    " main(sys.argv[1], pathlib.Path(sys.argv[2]))"
)


def test_another_process_reads_no_stale_value_once_the_replay_ran(
    make_redis_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_redis_server()
    recovery_peer.configure(server.url)
    recovery_peer.VALUE[0] = "v1"
    profile, stack = recovery_peer.profile, recovery_peer.stack
    assert profile(1) == "v1"
    stop = tmp_path / "stop"
    peer = subprocess.Popen(
        [sys.executable, "-c", PEER, server.url, str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(PYTHONPATH=root_pythonpath()),
    )
    try:
        assert peer.stdout is not None
        # The first read, then "ready"; the reads after it may already meet the outage.
        first = peer.stdout.readline().split()
        assert first, "the peer printed nothing: it failed at start-up (its stderr is above)"
        assert peer.stdout.readline().strip() == "ready"
        crash_keeping_data(server)
        recovery_peer.VALUE[0] = "v2"
        profile.invalidate(1)
        server.start()
        replayed = wait_replayed(stack)
        time.sleep(1.0)
    finally:
        stop.touch()
        out, _ = peer.communicate(timeout=30)
    assert first[1] == "v1", "the peer read the entry before the outage"
    reads = [line.split() for line in out.splitlines()]
    # The peer's invalidation message travels on the channel after the replay's DEL.
    after = [value for at, value in reads if float(at) > replayed + 0.1]
    assert len(after) >= 3, "the peer kept reading after the replay"
    assert after.count("v1") == 0, "0 stale reads in the other process after the replay"
    stack.close()
