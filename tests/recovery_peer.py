"""The other process of the auto-recovery test: reads ``profile(1)`` until told to stop.

Run :func:`main` (imported, so that the function keeps this module's name): it prints one
line per read, ``<time.monotonic()> <value>``, and the word ``ready`` after its first read.
The test process imports the same module, so both key ``profile`` alike.
"""

from __future__ import annotations

import time
from pathlib import Path

from stratacache import CacheStack, cached_for

stack = CacheStack()
VALUE = ["peer"]
"""What ``profile`` computes in this process (the test process sets its own)."""


@cached_for(seconds=120, tags=["user:{user}"], stack=stack)
def profile(user: int) -> str:
    """The cached function both processes share, by name."""
    return VALUE[0]


def configure(url: str) -> None:
    """Configure :data:`stack` on ``url``: RedisCacheNoExceptions under the local tier."""
    stack.configure(
        {
            "CACHE_TYPE": "RedisCacheNoExceptions",
            "CACHE_REDIS_URL": url,
            "CACHE_OPTIONS": {"retry_interval": 0.1},
        }
    )


def main(url: str, stop: Path) -> None:
    """Read ``profile(1)`` every 5 ms until ``stop`` exists, printing each answer."""
    configure(url)
    print(time.monotonic(), profile(1), flush=True)
    print("ready", flush=True)
    while not stop.exists():
        print(time.monotonic(), profile(1), flush=True)
        time.sleep(0.005)
