"""Shared-hit benchmark: a ``cached_for`` hit served by Redis, against the alternatives.

The local layer is bypassed (``LOCALCACHE_TYPE=NullCache``) so every call is a Redis hit.
The floor is raw redis-py ``GET`` + ``pickle.loads``; the other anchors are cachelib's
``RedisCache.get``, a dogpile.cache redis region and Flask-Caching's ``memoize`` on
RedisCache. It starts its own redis-server on a free loopback port.

    .venv/bin/python benchmarks/shared_hit.py              # full run, about 30 s
    .venv/bin/python benchmarks/shared_hit.py --smoke      # seconds
    .venv/bin/python benchmarks/shared_hit.py --json out.json
"""

from __future__ import annotations

import functools
import pickle
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachelib
import redis
from dogpile.cache import make_region
from flask import Flask
from flask_caching import Cache as FlaskCache

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from harness import environment, markdown, measure, parse_counts, save, summarize  # noqa: E402

from stratacache import CacheStack, cached_for  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

VALUE = {"USD": 1.08, "GBP": 0.85, "JPY": 161.2}
ANCHOR = "raw redis-py GET + pickle.loads"


def rates(currency: str) -> dict[str, float]:
    """The cached function: a small dict."""
    return dict(VALUE)


def build_cases(url: str, port: int) -> dict[str, Callable[[], Any]]:
    """Each contender, its entry already in Redis."""
    raw = redis.Redis(host="127.0.0.1", port=port)
    raw.set("raw:rates", pickle.dumps(VALUE, pickle.HIGHEST_PROTOCOL))

    def raw_get() -> Any:
        return pickle.loads(raw.get("raw:rates"))  # type: ignore[arg-type]

    cachelib_cache = cachelib.RedisCache(host="127.0.0.1", port=port, key_prefix="cl_")
    cachelib_cache.set("rates", VALUE)

    region = make_region().configure(
        "dogpile.cache.redis", arguments={"host": "127.0.0.1", "port": port}
    )
    region.set("rates", VALUE)

    app = Flask(__name__)
    flask_cache = FlaskCache(
        app,
        config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": "fc_"},
    )
    memoized = flask_cache.memoize(timeout=300)(rates)
    context = app.app_context()
    context.push()

    cases: dict[str, Callable[[], Any]] = {
        ANCHOR: raw_get,
        "cachelib RedisCache.get": functools.partial(cachelib_cache.get, "rates"),
        "dogpile.cache redis region.get": functools.partial(region.get, "rates"),
        "Flask-Caching memoize (RedisCache)": functools.partial(memoized, "EUR"),
    }
    for backend in ("RedisCache", "RedisCacheNoExceptions", "RedisCacheAtomic"):
        stack = CacheStack()
        stack.configure(
            {
                "CACHE_TYPE": backend,
                "CACHE_REDIS_URL": url,
                "CACHE_KEY_PREFIX": f"{backend}_",
                "LOCALCACHE_TYPE": "NullCache",
            }
        )
        cases[f"stratacache cached_for ({backend})"] = functools.partial(
            cached_for(minutes=5, stack=stack)(rates), "EUR"
        )
        if backend == "RedisCacheNoExceptions":  # the cost of auto-recovery's checks
            quiet = CacheStack()
            quiet.configure(
                {
                    "CACHE_TYPE": backend,
                    "CACHE_REDIS_URL": url,
                    "CACHE_KEY_PREFIX": "quiet_",
                    "LOCALCACHE_TYPE": "NullCache",
                    "CACHE_RECOVERY_MAX": 0,
                }
            )
            cases[f"stratacache cached_for ({backend}, CACHE_RECOVERY_MAX=0)"] = functools.partial(
                cached_for(minutes=5, stack=quiet)(rates), "EUR"
            )
        if backend == "RedisCacheAtomic":
            cases["stratacache cached_for (RedisCacheAtomic, at_most_once)"] = functools.partial(
                cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")(rates), "EUR"
            )
    for case in cases.values():
        assert case() == VALUE
    return cases


def main(argv: list[str] | None = None) -> int:
    """Start a redis-server, run the cases side by side, print (and save) the figures."""
    batches, calls, json_path = parse_counts(
        argv, __doc__.splitlines()[0], batches=40, calls=500, smoke=(3, 20)
    )
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            results = summarize(
                measure(build_cases(server.url, server.port), batches, calls), ANCHOR
            )
            env = environment("redis", "cachelib", "dogpile.cache", "Flask-Caching")
            env["redis_server"] = server.client().info()["redis_version"]
        finally:
            server.stop()
    print(markdown(results, "the raw floor", unit="us"))
    if json_path:
        save(json_path, env, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
