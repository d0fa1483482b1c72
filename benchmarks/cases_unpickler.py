"""The restricted unpickler's cost: a shared hit with ``CACHE_PICKLE_ALLOW`` against plain pickle.

Each value is measured side by side on two stacks of the same redis-server (local layer
NullCache, so every call is a Redis hit): one with plain pickle, one with the allow-list.
The small dict holds no global, so only the unpickler object is paid; the record holds a
``datetime``, a ``Decimal`` and a ``UUID``, whose globals go through ``find_class`` (each
resolved once, then taken from the serializer's memo). The last two tables are ``loads`` alone,
without Redis, where the unpickler's fixed cost (a ``pickle.Unpickler`` object and a
``BytesIO`` per load, about half a microsecond) is the largest part of the figure.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import pickle
import uuid
from collections.abc import Callable
from typing import Any

from harness import measure
from model import CaseResult, Context, check, make_table

from stratacache import CacheStack, PickleSerializer, cached_for
from stratacache.unpickling import RestrictedPickleSerializer

CASES = ("restricted_unpickler",)

SMALL = {"USD": 1.08, "GBP": 0.85, "JPY": 161.2}
RECORD = {
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "placed": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
    "total": decimal.Decimal("129.90"),
    "lines": [{"sku": f"SKU-{i}", "qty": i, "price": decimal.Decimal("12.99")} for i in range(5)],
}
VALUES = {"small dict": SMALL, "record": RECORD}
PLAIN, RESTRICTED = "plain pickle", "CACHE_PICKLE_ALLOW"


def _hit(url: str, allow: list[str] | None, kind: str) -> Callable[[], Any]:
    stack = CacheStack()
    options: dict[str, Any] = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": url,
        "CACHE_KEY_PREFIX": f"unpickler_{kind.replace(' ', '_')}_{allow is not None}_",
        "LOCALCACHE_TYPE": "NullCache",
    }
    if allow is not None:
        options["CACHE_PICKLE_ALLOW"] = allow
    stack.configure(options)
    tier = stack.shared_cache.cache
    assert isinstance(tier.serializer, RestrictedPickleSerializer) is (allow is not None)

    value = VALUES[kind]

    @cached_for(minutes=5, stack=stack)
    def fetch(name: str) -> Any:
        return value

    call = functools.partial(fetch, "v")
    assert call() == value
    return call


def build_cases(url: str) -> dict[str, Callable[[], Any]]:
    """Each value's shared hit under both serializers, and ``loads`` alone on the record."""
    cases: dict[str, Callable[[], Any]] = {}
    for kind in VALUES:
        cases[f"{kind}: {PLAIN}"] = _hit(url, None, kind)
        cases[f"{kind}: {RESTRICTED}"] = _hit(url, ["myapp.models"], kind)
    restricted = RestrictedPickleSerializer(["myapp.models"])
    for kind, value in VALUES.items():
        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        cases[f"loads, {kind}: {PLAIN}"] = functools.partial(PickleSerializer().loads, data)
        cases[f"loads, {kind}: {RESTRICTED}"] = functools.partial(restricted.loads, data)
        assert restricted.loads(data) == value
    return cases


def run(ctx: Context) -> list[CaseResult]:
    """Measure the restricted unpickler's case."""
    batches, calls = ctx.pick((120, 25), (3, 10))
    samples = measure(build_cases(ctx.server.url), batches, calls)
    tables = {
        kind: make_table(
            title,
            samples,
            f"{kind}: {PLAIN}",
            names=[f"{kind}: {PLAIN}", f"{kind}: {RESTRICTED}"],
        )
        for kind, title in (
            ("small dict", "shared hit, small dict (no global)"),
            ("record", "shared hit, record (datetime, Decimal, UUID)"),
            ("loads, small dict", "loads alone, small dict (no Redis)"),
            ("loads, record", "loads alone, record (no Redis)"),
        )
    }
    return [
        CaseResult(
            "restricted_unpickler",
            list(tables.values()),
            [
                check(
                    "restricted_unpickler",
                    tables["record"],
                    f"record: {RESTRICTED}",
                    "<= 1.1x a plain-pickle shared hit",
                    short="vs plain pickle",
                    at_most=1.1,
                )
            ],
        )
    ]
