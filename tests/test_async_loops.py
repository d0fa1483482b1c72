"""One backend, many event loops: pytest-asyncio's loop per test, and a forked child.

A service's tests run each test in a fresh loop; a module-level cache (as an application
holds one) is then used from loop after loop, and must neither fail with "attached to a
different loop" nor leave a connection open (warnings are errors in this suite).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCacheAtomic
from stratacache_plugins.simple import SimpleCache
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def service(redis_server: RedisServer) -> Iterator[dict[str, Any]]:
    """A module-level stack and function, as an application defines them once."""
    connected = int(redis_server.client().info("clients")["connected_clients"])
    backend = RedisCacheAtomic(url=redis_server.url, key_prefix="loops:")
    stack = CacheStack.from_tiers([SimpleCache(), backend])
    calls: list[int] = []

    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    async def square(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0)
        return n * n

    yield {
        "stack": stack,
        "square": square,
        "calls": calls,
        "url": redis_server.url,
        "connected": connected,
    }
    stack.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("n", range(4))
async def test_each_test_loop_reaches_redis(service: dict[str, Any], n: int) -> None:
    stack, square = service["stack"], service["square"]
    for tier in stack.tiers[:1]:
        tier.cache.clear()  # the local copy goes: the value comes from Redis on this loop
    assert await square(n) == n * n
    assert await stack.aget(square.cache_key(n)) == n * n
    assert await stack.aset(f"loop{n}", n) is True
    assert service["calls"].count(n) == 1


@pytest.mark.asyncio
async def test_connections_stay_bounded_across_loops(service: dict[str, Any]) -> None:
    # Beside the connections the session's other tests left (listeners, pools), this
    # module's loops after loops added at most a few.
    clients = redis.Redis.from_url(service["url"])
    assert int(clients.info("clients")["connected_clients"]) <= service["connected"] + 4


def test_a_forked_child_gets_its_own_clients(service: dict[str, Any]) -> None:
    square = service["square"]

    async def use() -> int:
        return int(await square(30))

    assert asyncio.run(use()) == 900
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its parent's loops and sockets are not its own
        try:
            service["stack"].tiers[0].cache.clear()
            ok = asyncio.run(use()) == 900 and asyncio.run(square.invalidate(30)) is True
            os.write(write, b"ok" if ok else b"no")
        except BaseException as exc:
            os.write(write, repr(exc).encode()[:500])
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 600)
    os.close(read)
    assert status == 0
    assert answer == b"ok", answer
    assert asyncio.run(use()) == 900, "the parent's clients still work"
