"""A small Flask service on stratacache's two layers, configured only by environment variables.

Each gunicorn worker is a process with its own local layer; every worker shares the shared
layer (Redis), so a value one worker computed serves the others. From this directory:

    CACHE_TYPE=RedisCache CACHE_REDIS_URL=redis://127.0.0.1:6379/0 \\
        gunicorn -w 2 -b 127.0.0.1:8000 app:app

Every response is JSON and names the worker (``pid``) that served it:

    GET  /rates/<currency>    the cached rates, with the worker that computed them
    GET  /layers/<currency>   which layers of this worker hold the entry right now
    POST /clear               exchange_rates.clear_cache(), run by this worker
    GET  /health              readiness
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

import stratacache
from stratacache import cached_for

# Every setting comes from the environment (CACHE_*, LOCALCACHE_*, or a .env file in the
# working directory). Invalid settings stop the worker at boot, with every problem listed.
stratacache.configure()

app = Flask(__name__)

RATES = {"EUR": {"USD": 1.08, "GBP": 0.85}, "USD": {"EUR": 0.93, "GBP": 0.79}}


@cached_for(minutes=5)
def exchange_rates(currency: str) -> dict[str, Any]:
    """Pretend to call a slow rates API; say which worker did, and tag this computation."""
    time.sleep(0.1)
    return {
        "currency": currency,
        "rates": RATES.get(currency, {}),
        "computed_by": os.getpid(),
        "computation": uuid.uuid4().hex,
    }


@app.get("/rates/<currency>")
def rates(currency: str) -> ResponseReturnValue:
    """The cached rates; ``computed_by`` differs from ``pid`` when another worker computed them."""
    return jsonify(pid=os.getpid(), value=exchange_rates(currency))


@app.get("/layers/<currency>")
def layers(currency: str) -> ResponseReturnValue:
    """Which layers of this worker hold the entry of ``exchange_rates(currency)`` now."""
    key = exchange_rates.cache_key(currency)
    cache = stratacache.cache
    return jsonify(
        pid=os.getpid(),
        key=key,
        local=cache.local_cache.cache.has(key),
        shared=cache.shared_cache.cache.has(key),
    )


@app.post("/clear")
def clear() -> ResponseReturnValue:
    """Delete every entry of exchange_rates from this worker's layers and the shared layer."""
    return jsonify(pid=os.getpid(), removed=exchange_rates.clear_cache())


@app.get("/health")
def health() -> ResponseReturnValue:
    """Readiness, and the backends this worker runs on."""
    cache = stratacache.cache
    return jsonify(
        pid=os.getpid(),
        shared=type(cache.shared_cache.cache).__name__,
        local=type(cache.local_cache.cache).__name__,
    )
