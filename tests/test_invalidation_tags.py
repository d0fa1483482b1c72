"""Tags over the invalidation channel: ``invalidate_tags`` in one instance drops the tagged
local copies of the others, as one message per tag, on one real redis-server.

Two stacks stand in for two instances; one test runs the invalidating instance in a process
of its own, through the module-level ``stratacache.invalidate_tags``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stratacache import NO_VALUE, CacheStack, cached_for
from tests.test_invalidation import _recorder, gone_within, instance, local, subscribed

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unsigned pickles


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[CacheStack, CacheStack]]:
    a, b = instance(redis_url), instance(redis_url)
    subscribed(a)
    subscribed(b)
    yield a, b
    a.close()
    b.close()


def owners(stack: CacheStack, names: dict[int, str]) -> Any:
    """A function whose entries carry the tag ``user:<id>``, in one instance."""

    @cached_for(hours=1, stack=stack, tags=["user:{user_id}"])
    def owner(user_id: int) -> str:
        return names[user_id]

    return owner


def teams(stack: CacheStack, names: dict[int, str]) -> Any:
    """Another function, whose entries carry the same tags: a tag spans functions."""

    @cached_for(hours=1, stack=stack, tags=["user:{user_id}"])
    def team(user_id: int) -> str:
        return "team of " + names[user_id]

    return team


def test_invalidate_tags_drops_the_other_instance_tagged_copies(
    pair: tuple[CacheStack, CacheStack],
) -> None:
    a, b = pair
    names = {1: "ann", 2: "bob"}
    owner_a, team_a = owners(a, names), teams(a, names)
    assert (owner_a(1), team_a(1), owner_a(2)) == ("ann", "team of ann", "bob")
    tagged, other = [owner_a.cache_key(1), team_a.cache_key(1)], owner_a.cache_key(2)
    assert [local(a, k) for k in tagged] == ["ann", "team of ann"]
    names[1] = "anna"
    assert b.invalidate_tags("user:1") == 2  # both entries, deleted in Redis by B
    took = gone_within(lambda: all(local(a, k) is NO_VALUE for k in tagged))
    print(f"A's tagged copies gone {took * 1000:.2f} ms after B's invalidate_tags returned")
    assert local(a, other) == "bob"  # another tag's copy stays
    assert (owner_a(1), team_a(1)) == ("anna", "team of anna")
    assert a.stats()["invalidation"]["received"] == 1
    assert a.stats()["invalidation"]["flushes_after_loss"] == 0


def test_each_tag_is_one_message_whatever_its_entries(
    pair: tuple[CacheStack, CacheStack], redis_url: str
) -> None:
    a, b = pair
    names = dict.fromkeys(range(30), "x")
    owner_a = owners(a, names)
    for user in range(30):
        owner_a(user)
    messages = _recorder(redis_url)
    b.invalidate_tags("user:3", "user:4")
    gone_within(lambda: a.stats()["invalidation"]["received"] == 2)
    origin = b._layers().coherence.origin  # type: ignore[union-attr]
    from_b = [(m.op, m.group, list(m.keys)) for m in messages() if m.origin == origin]
    assert from_b == [("t", None, ["user:3"]), ("t", None, ["user:4"])]
    assert local(a, owner_a.cache_key(5)) == "x"


def test_own_tag_invalidation_is_no_echo(pair: tuple[CacheStack, CacheStack]) -> None:
    a, b = pair
    names = {1: "ann"}
    owner_a = owners(a, names)
    owner_a(1)
    a.invalidate_tags("user:1")
    owner_a(1)  # computed again, stored in A's local tier after its own invalidation
    gone_within(lambda: b.stats()["invalidation"]["received"] >= 2)  # the tag, the write
    time.sleep(0.1)  # time for an echo to arrive, had there been one
    assert local(a, owner_a.cache_key(1)) == "ann"
    assert a.stats()["invalidation"]["received"] == 0


def test_ainvalidate_tags_drops_the_other_instance_tagged_copies(
    pair: tuple[CacheStack, CacheStack],
) -> None:
    a, b = pair
    names = {7: "old"}

    @cached_for(hours=1, stack=a, tags=["user:{user_id}"])
    async def owner(user_id: int) -> str:
        return names[user_id]

    assert asyncio.run(owner(7)) == "old"
    key = owner.cache_key(7)
    assert local(a, key) == "old"
    names[7] = "new"
    assert asyncio.run(b.ainvalidate_tags("user:7")) == 1
    gone_within(lambda: local(a, key) is NO_VALUE)
    assert asyncio.run(owner(7)) == "new"


def test_another_process_invalidate_tags_reaches_this_one(
    pair: tuple[CacheStack, CacheStack], redis_url: str
) -> None:
    a, _ = pair
    names = {5: "before"}
    owner_a = owners(a, names)
    assert owner_a(5) == "before"
    key = owner_a.cache_key(5)
    names[5] = "after"
    code = """
        import os
        import stratacache
        stratacache.cache.configure({"CACHE_TYPE": "RedisCache", "CACHE_KEY_PREFIX": "inv",
                                     "CACHE_REDIS_URL": os.environ["URL"]})
        print(stratacache.invalidate_tags("user:5"), flush=True)
        stratacache.cache.close()
        """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "URL": redis_url}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]
    gone_within(lambda: local(a, key) is NO_VALUE)
    assert owner_a(5) == "after"
