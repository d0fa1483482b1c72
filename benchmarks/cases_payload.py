"""Payload size: a shared hit of a 100 B, 10 KB and 1 MB value, against raw redis-py.

The value is a ``bytes`` object of that size (random, so nothing compresses it). Each size
is its own group: raw ``GET`` + ``pickle.loads`` and a ``cached_for`` hit on RedisCache with
the local layer off (NullCache), alternating batch by batch.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable
from typing import Any

import redis
from harness import measure
from model import CaseResult, Context, Table, check, make_table

from stratacache import CacheStack, cached_for

CASES = ("payload",)

SIZES = {"100 B": 100, "10 KB": 10_000, "1 MB": 1_000_000}
RAW = "raw redis-py GET + pickle.loads"
STRATACACHE = "stratacache cached_for (RedisCache)"

PAYLOADS: dict[int, bytes] = {}


def payload(size: int) -> bytes:
    """The cached function: the value of ``size`` bytes."""
    return PAYLOADS[size]


def build(url: str, port: int, size: int) -> dict[str, Callable[[], Any]]:
    """Raw and stratacache hits of the ``size``-byte value, already in Redis."""
    PAYLOADS[size] = os.urandom(size)
    client = redis.Redis(host="127.0.0.1", port=port)
    raw_key = f"raw:payload:{size}"
    client.set(raw_key, pickle.dumps(PAYLOADS[size], pickle.HIGHEST_PROTOCOL))

    def raw_get() -> Any:
        return pickle.loads(client.get(raw_key))  # type: ignore[arg-type]

    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": url,
            "CACHE_KEY_PREFIX": "payload_",
            "LOCALCACHE_TYPE": "NullCache",
        }
    )
    func = cached_for(minutes=10, stack=stack)(payload)
    func(size)  # the miss that writes it
    cases: dict[str, Callable[[], Any]] = {RAW: raw_get, STRATACACHE: functools.partial(func, size)}
    for case in cases.values():
        assert case() == PAYLOADS[size]
    return cases


def run(ctx: Context) -> list[CaseResult]:
    """Measure each size and check each against the 1.15x target."""
    tables: list[Table] = []
    for label, size in SIZES.items():
        batches, calls = ctx.pick((60, 5) if size >= 1_000_000 else (100, 30), (3, 2))
        samples = measure(build(ctx.server.url, ctx.server.port, size), batches, calls)
        tables.append(make_table(f"shared hit, {label} value", samples, RAW))
    checks = [
        check(
            "payload",
            table,
            STRATACACHE,
            f"<= 1.15x raw at {label}",
            short=f"{label} vs raw",
            at_most=1.15,
            label=f"{STRATACACHE}, {label}",
        )
        for label, table in zip(SIZES, tables, strict=True)
    ]
    return [CaseResult("payload", tables, checks)]
