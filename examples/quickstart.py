"""stratacache in one minute: a local layer in front of a shared one, signed.

Runs on an embedded default that needs no server: SimpleCache (in this process) in front of
FileSystemCache (in a temporary directory, standing in for Redis), with CACHE_SECRET_KEY set
so that every shared entry is signed. It prints what was computed, which layer answered each
call and how long it took, an invalidation, and the counters of ``cache.stats()``.

    make demo        # or: python examples/quickstart.py
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from typing import Any

from stratacache import cache, cached_for, configure


@cached_for(minutes=5)
def exchange_rates(currency: str) -> dict[str, float]:
    """Pretend to call a slow rates API."""
    print(f"    computing exchange_rates({currency!r}) ...")
    time.sleep(0.2)
    return {"USD": 1.08, "GBP": 0.85} if currency == "EUR" else {"EUR": 0.93}


class User:
    """An object we would rather not pickle (think of an ORM instance)."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id


@cached_for(minutes=30, local_ram_cache_only=True, no_serialization=True)
def load_user(user_id: int) -> User:
    """Pretend to load a user from the database."""
    print(f"    computing load_user({user_id}) ...")
    time.sleep(0.05)
    return User(user_id)


def where(func: Any, *args: Any) -> str:
    """Say which layer holds the entry of ``func(*args)`` right now."""
    key = func.cache_key(*args)
    if func is load_user:
        return "local (by reference)" if cache.local_cache_no_serializer.cache.has(key) else "-"
    if cache.local_cache.cache.has(key):
        return "local"
    if cache.shared_cache.cache.has(key):
        return "shared"
    return "-"


def timed(label: str, func: Callable[..., Any], *args: Any) -> Any:
    """Call ``func(*args)`` and print which layer answered and how long it took."""
    source = where(func, *args)
    start = time.perf_counter()
    result = func(*args)
    elapsed = time.perf_counter() - start
    answered = {"-": "the function"}.get(source, f"the {source} layer")
    shown = f"{elapsed * 1e6:8.1f} µs" if elapsed < 1e-3 else f"{elapsed * 1e3:8.1f} ms"
    print(f"  {label:<40} answered by {answered:<32} in {shown}")
    return result


def show_stats() -> None:
    """Print the counters of ``cache.stats()``, per layer and per function."""
    snapshot = cache.stats()
    print(f"  {'layer':<22}{'hits':>6}{'misses':>8}{'sets':>6}{'deletes':>9}")
    for name, layer in snapshot["layers"].items():
        print(
            f"  {name:<22}{layer['hits']:>6}{layer['misses']:>8}{layer['sets']:>6}"
            f"{layer['deletes']:>9}"
        )
    for name, f in snapshot["functions"].items():
        print(
            f"  {name.rpartition('.')[2]}: {f['local_hits']} local hits, {f['shared_hits']}"
            f" shared hits, {f['misses']} misses, {f['computations']} computations"
            f" ({f['compute_seconds']:.2f} s)"
        )


def main() -> None:
    """Walk through the read path of the two layers."""
    with tempfile.TemporaryDirectory(prefix="stratacache-demo-") as shared_dir:
        configure(
            {
                "CACHE_TYPE": "FileSystemCache",
                "CACHE_DIR": shared_dir,
                "LOCALCACHE_TYPE": "SimpleCache",
                "LOCALCACHE_THRESHOLD": 1000,
                # Signs every shared entry (HMAC-SHA256): one that is unsigned or signed with
                # another key is never unpickled. A deployment sets it in its environment.
                "CACHE_SECRET_KEY": secrets.token_urlsafe(32),
            }
        )
        shared = cache.shared_cache.cache
        print(f"shared layer: {shared!r} in {shared_dir}")
        print(f"local layer:  {cache.local_cache.cache!r}")
        print(f"signing:      {'on' if shared.signer else 'off'} (CACHE_SECRET_KEY, HMAC-SHA256)\n")

        print("1. A miss computes the value and writes both layers:")
        timed("exchange_rates('EUR')", exchange_rates, "EUR")
        print("2. The next call is a local hit:")
        timed("exchange_rates('EUR')", exchange_rates, "EUR")

        print("3. Another process (here: an empty local layer) finds it in the shared layer:")
        cache.local_cache.cache.clear()
        timed("exchange_rates('EUR')", exchange_rates, "EUR")
        print("   ... which filled the local layer again:")
        timed("exchange_rates('EUR')", exchange_rates, "EUR")

        print("4. Objects kept by reference, never pickled:")
        first = timed("load_user(42)", load_user, 42)
        again = timed("load_user(42)", load_user, 42)
        print(f"    same object both times: {first is again}")

        print("5. Invalidation:")
        exchange_rates.invalidate("EUR")
        timed("exchange_rates('EUR') after invalidate", exchange_rates, "EUR")
        timed("exchange_rates('USD')", exchange_rates, "USD")
        removed = exchange_rates.clear_cache()
        print(f"    exchange_rates.clear_cache() removed {removed} entries across the layers")
        timed("exchange_rates('USD') after clear_cache", exchange_rates, "USD")

        print("6. What cache.stats() counted:")
        show_stats()


if __name__ == "__main__":
    main()
