"""The contenders of the three-tier case: SimpleCache, then FileSystemCache, then RedisCache.

The stack is configured with ``CACHE_LAYERS``, a list of tier specs, top (fastest) first::

    [{"type": "SimpleCache", "name": "memory", "timeout": 60},
     {"type": "FileSystemCache", "name": "disk", "cache_dir": "..."},
     {"type": "RedisCache", "name": "redis", "url": "redis://127.0.0.1:PORT/0"}]

* steady state: the local hit of a function whose entry is in every tier (measured in the
  local-hit group of ``cases_local.py``, against the SimpleCache hit).
* fill from tier 2: both upper tiers empty, the value in Redis (written there by a stack of
  the Redis tier alone): the call that reads Redis and fills the two tiers above. Each call
  is on a fresh argument, written into Redis beforehand. Beside it, for scale: the same fill
  of a two-tier stack (SimpleCache over RedisCache) and a hit of the Redis tier alone.

Both are checked before they are measured without relying on the stack's accessors: the
function counts its calls (a hit never calls it) and the benchmark's redis-server counts
the commands it receives (a local hit sends none).

A core without ``CACHE_LAYERS`` (before the layer-stack redesign) rejects the key as
unknown; the case is then skipped, with a printed message (:func:`unsupported`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from local_hit import RATES
from topology import wait_subscribed

from stratacache import CacheStack, ConfigurationError, cached_for
from tests.redis_server import RedisServer

THREE_TIER = "stratacache three-tier steady state (SimpleCache, FileSystemCache, RedisCache)"
FILL = "stratacache three-tier fill from tier 2 (Redis into FileSystemCache and SimpleCache)"
TWO_LAYER_FILL = "stratacache two-tier fill (Redis into SimpleCache)"
SHARED_HIT = "stratacache RedisCache tier alone, hit"

_calls = [0]


def tier_rates(currency: str) -> dict[str, float]:
    """The function the three-tier contenders cache: a small dict; it counts its calls."""
    _calls[0] += 1
    return dict(RATES)


def computed() -> int:
    """How many times :func:`tier_rates` ran so far (a hit never runs it)."""
    return _calls[0]


def layers(
    url: str, directory: Path, *, tiers: tuple[str, ...] = ("memory", "disk", "redis")
) -> dict[str, list[dict[str, Any]]]:
    """The ``CACHE_LAYERS`` configuration of the named tiers, top first."""
    specs = {
        "memory": {"type": "SimpleCache", "name": "memory", "timeout": 60},
        "disk": {"type": "FileSystemCache", "name": "disk", "cache_dir": str(directory)},
        "redis": {"type": "RedisCache", "name": "redis", "url": url},
    }
    return {"CACHE_LAYERS": [specs[name] for name in tiers]}


def unsupported(error: ConfigurationError) -> bool:
    """Whether ``error`` says this core has no ``CACHE_LAYERS`` key (and nothing else)."""
    return bool(error.problems) and all(
        p.startswith("CACHE_LAYERS") and "unknown configuration key" in p for p in error.problems
    )


def configured(settings: dict[str, Any]) -> CacheStack | str:
    """A stack configured with ``settings``, or the skip message if ``CACHE_LAYERS`` is unknown.

    Any other configuration error is raised: a broken tier spec must not pass for a skip.
    """
    stack = CacheStack()
    try:
        stack.configure(settings)
    except ConfigurationError as exc:
        if not unsupported(exc):
            raise
        return (
            "skipped: this stratacache core has no CACHE_LAYERS (the layer-stack redesign is"
            f" not in it); configure() said: {' '.join(str(exc).split())}"
        )
    # A channel confirmed after the first calls flushes what they filled: under load, later
    # than configure() waits for it. (A stack of the Redis tier alone has no channel.)
    if "invalidation" in stack.stats():
        wait_subscribed(stack)
    return stack


def skip(message: str) -> None:
    """Print why the three-tier case is skipped."""
    print(f"three-tier steady state: {message}", file=sys.stderr)


def local_commands(server: RedisServer, calls: Callable[[], Any], times: int) -> dict[str, int]:
    """The commands Redis receives while ``calls`` runs ``times`` times.

    Not counted: what counting sends (``CONFIG RESETSTAT``, ``INFO``, and the ``HELLO`` /
    ``CLIENT`` handshake of the inspecting client's new connection).
    """
    server.reset_stats()
    for _ in range(times):
        calls()
    return {
        name: n
        for name, n in server.command_counts().items()
        if not name.startswith(("info", "config", "hello", "client"))
    }


def steady_state(server: RedisServer, directory: Path) -> Callable[[], Any] | str:
    """The three-tier hit after the entry is in every tier, or the skip message.

    The first call is a miss (computed, stored); every later call must be served by the
    top tier: neither computed again nor sent to Redis.
    """
    stack = configured(layers(server.url, directory / "steady-disk"))
    if isinstance(stack, str):
        return stack
    func = cached_for(minutes=5, stack=stack)(tier_rates)
    before = computed()
    assert func("EUR") == RATES
    assert func("EUR") == RATES
    assert computed() == before + 1, "the three-tier hit called the function again"
    call = functools.partial(func, "EUR")
    sent = local_commands(server, call, 50)
    assert not sent, f"the three-tier steady state is not a local hit: Redis got {sent}"
    return call


def _fresh(func: Callable[[str], Any], keys: Iterator[str]) -> Callable[[], Any]:
    def call() -> Any:
        return func(next(keys))

    return call


def fill_cases(server: RedisServer, directory: Path, count: int) -> dict[str, Callable[[], Any]]:
    """The fill contenders, each with ``count`` fresh arguments already in Redis, and the
    anchor: a hit of the stack of the Redis tier alone (the stack that wrote them).

    Raises:
        ConfigurationError: The tier specs are rejected (``CACHE_LAYERS`` itself is known:
            :func:`steady_state` ran first).
    """
    url = server.url
    stacks = {}
    for tiers in (("redis",), ("memory", "redis"), ("memory", "disk", "redis")):
        stack = configured(layers(url, directory / f"fill-{len(tiers)}", tiers=tiers))
        assert isinstance(stack, CacheStack), stack
        stacks[len(tiers)] = stack
    write = cached_for(minutes=5, stack=stacks[1])(tier_rates)
    cases: dict[str, Callable[[], Any]] = {}
    for name, tiers in ((FILL, 3), (TWO_LAYER_FILL, 2)):
        read = cached_for(minutes=5, stack=stacks[tiers])(tier_rates)
        keys = [f"fill{tiers}-{n}" for n in range(count + 1)]
        for key in keys:
            assert write(key) == RATES
        before = computed()
        assert read(keys[0]) == RATES  # the probe: read from Redis, not computed ...
        assert computed() == before, f"{name}: the value in Redis was not found; computed"
        sent = local_commands(server, functools.partial(read, keys[0]), 3)
        assert not sent, f"{name}: the tiers above Redis were not filled: Redis got {sent}"
        cases[name] = _fresh(read, iter(keys[1:]))
    assert write("EUR") == RATES
    cases[SHARED_HIT] = functools.partial(write, "EUR")
    return cases
