"""A small FastAPI service on stratacache's two layers, configured only by environment variables.

Each uvicorn worker is a process with its own local layer (SimpleCache); every worker shares
the shared layer (RedisCache on ``CACHE_REDIS_URL``), so a value one worker computed is a
shared hit in the others. The endpoints are ``async def``, and so is the cached function:
a local hit costs no ``await``. From this directory:

    CACHE_TYPE=RedisCache CACHE_REDIS_URL=redis://127.0.0.1:6379/0 \\
        uvicorn app:app --workers 2 --host 127.0.0.1 --port 8000

Every response is JSON and names the worker (``pid``) that served it:

    GET  /rates/{currency}   the cached rates, the worker that computed them, their key
    GET  /stats              this worker's counters (stratacache.cache.stats())
    PUT  /notes/{name}       await cache.aset(...): a value in every layer, Redis included
    GET  /notes/{name}       await cache.aget(...): from this worker's local layer, or Redis
    POST /clear              await exchange_rates.clear_cache(), run by this worker
    GET  /health             readiness, and the backends of this worker
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from fastapi import Body, FastAPI, HTTPException

import stratacache
from stratacache import cached_for

# Every setting comes from the environment (CACHE_*, LOCALCACHE_*, or a .env file in the
# working directory). Invalid settings stop the worker at boot, with every problem listed.
stratacache.configure()

app = FastAPI(title="rates")

RATES = {"EUR": {"USD": 1.08, "GBP": 0.85}, "USD": {"EUR": 0.93, "GBP": 0.79}}
NOTE_SECONDS = 300


@cached_for(minutes=5)
async def exchange_rates(currency: str) -> dict[str, Any]:
    """Pretend to call a slow rates API; say which worker did, and tag this computation."""
    await asyncio.sleep(0.1)
    return {
        "currency": currency,
        "rates": RATES.get(currency, {}),
        "computed_by": os.getpid(),
        "computation": uuid.uuid4().hex,
    }


@app.get("/rates/{currency}")
async def rates(currency: str) -> dict[str, Any]:
    """The cached rates; ``computed_by`` differs from ``pid`` when another worker computed them."""
    value = await exchange_rates(currency)
    return {"pid": os.getpid(), "key": exchange_rates.cache_key(currency), "value": value}


@app.get("/stats")
async def stats() -> dict[str, Any]:
    """This worker's counters: per layer, and per cached function (``exchange_rates``...)."""
    return {"pid": os.getpid(), "stats": stratacache.cache.stats()}


@app.put("/notes/{name}")
async def put_note(name: str, text: str = Body(embed=True)) -> dict[str, Any]:
    """Store a note in every layer (the shared one first), for ``NOTE_SECONDS``."""
    stored = await stratacache.cache.aset(f"note:{name}", text, timeout=NOTE_SECONDS)
    return {"pid": os.getpid(), "stored": stored}


@app.get("/notes/{name}")
async def get_note(name: str) -> dict[str, Any]:
    """A note, from this worker's local layer or else the shared one (which fills the local)."""
    text = await stratacache.cache.aget(f"note:{name}")
    if text is None:
        raise HTTPException(status_code=404, detail=f"no note {name!r}")
    return {"pid": os.getpid(), "text": text}


@app.post("/clear")
async def clear() -> dict[str, Any]:
    """Delete every entry of exchange_rates from this worker's layers and the shared layer."""
    return {"pid": os.getpid(), "removed": await exchange_rates.clear_cache()}


@app.get("/health")
async def health() -> dict[str, Any]:
    """Readiness, and the backends this worker runs on."""
    cache = stratacache.cache
    return {
        "pid": os.getpid(),
        "shared": type(cache.shared_cache.cache).__name__,
        "local": type(cache.local_cache.cache).__name__,
    }
