"""The two instances of the outage scenario (``test_recovery_outage``), by module name.

The test process is instance A (a local tier above RedisCacheNoExceptions); :func:`main`
runs instance B in another process, with no local tier, so that each of its reads is what
Redis holds. Both import this module, so both key ``price`` and ``quote`` alike.
"""

from __future__ import annotations

import time
from pathlib import Path

from stratacache import CacheStack, cached_for

stack = CacheStack()
VALUE = ["peer"]
"""What the functions compute in this process (A sets its own)."""


@cached_for(seconds=120, stack=stack)
def price(item: int) -> str:
    """Invalidated by A during the outage."""
    return VALUE[0]


@cached_for(seconds=120, stack=stack)
def quote(item: int) -> str:
    """Computed by A during the outage (a local copy only), written by B after it."""
    return f"{VALUE[0]}{item}"


def configure(url: str, *, local: bool) -> None:
    """Configure :data:`stack` on ``url``: A's (``local``) or B's, the channel off."""
    redis = {"type": "RedisCacheNoExceptions", "name": "shared", "url": url}
    layers = [{"type": "SimpleCache", "name": "local"}] if local else []
    redis |= {"retry_interval": 0.1, "invalidation": "off"}
    stack.configure({"CACHE_LAYERS": [*layers, redis]})


NEWER = "B"
"""The source's value once Redis is back: what B writes, and what A computes then."""


def newer(item: int) -> str:
    """What B writes for ``quote(item)`` once Redis is back."""
    return f"{NEWER}{item}"


def main(url: str, directory: Path, count: int) -> None:
    """Instance B: read, wait for the restart, write the newer quotes, read prices.

    Prints ``ready`` after its first reads, ``written <time>`` once Redis took every
    quote, then one line per read, ``<time.monotonic()> <item> <value>``, until
    ``directory/stop`` exists.
    """
    configure(url, local=False)
    for item in range(count):
        price(item)
    print("ready", flush=True)
    while not (directory / "restarted").exists():
        time.sleep(0.005)
    for item in range(count):
        while not quote.set(newer(item), item):  # through the backend's back-off
            time.sleep(0.01)
    print("written", time.monotonic(), flush=True)
    while not (directory / "stop").exists():
        for item in range(count):
            print(time.monotonic(), item, price(item), flush=True)
        time.sleep(0.005)
