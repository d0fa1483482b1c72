"""The Redis backends: RedisCache, RedisCacheNoExceptions and RedisCacheAtomic.

Install the client with ``pip install 'stratacache[redis]'``.

* :class:`RedisCache` raises :class:`RedisCacheError` (a :class:`~stratacache.CacheError`)
  when Redis fails, and :class:`~stratacache.DeserializationError` for an unreadable entry.
* :class:`RedisCacheNoExceptions` never raises to its caller: an unreadable entry is deleted
  and is a miss; while Redis is unreachable, slow or answering errors, reads miss and writes
  report failure, and Redis is skipped for a short back-off between probes.
* :class:`RedisCacheAtomic` adds ``atomic_writes`` coordination across processes and hosts.

Keys: the decorator's keys start with the function's name in braces (``{module.f}(...)``), a
Redis Cluster hash tag, so an entry, its lock and its function's tracking set share a slot.
Each function's keys are tracked in a sorted set scored by expiry, trimmed of expired members
on every write, so ``f.clear_cache()`` deletes exactly those keys without a scan and the
tracking data cannot outgrow the live entries.

Modules: ``options`` (the options models and the URL grammar), ``checks`` (what redis-py
would refuse, found at construction), ``connection`` (pools per process and server),
``client`` (a backend's client and how its calls fail), ``naming`` (key names under the
prefix), ``codec`` (values to bytes and back), ``tracking`` (the tracking sets), ``scripts``
(the Lua scripts), ``monitoring`` (what ``stratacache info`` and ``stats`` read),
``invalidation`` (the messages that keep other instances' local tiers coherent),
``announcing`` (how a backend sends them), ``listener`` (the process's pub/sub thread that
applies them), ``cache`` (RedisCache), ``noexceptions`` and ``atomic``. Everything public
is exported here: ``stratacache_plugins.rediscache.RedisCacheNoExceptions`` is the dotted
path to give.
"""

from stratacache_plugins.rediscache.atomic import AtomicWaitTimeout, RedisCacheAtomic
from stratacache_plugins.rediscache.cache import RedisCache, RedisCacheError
from stratacache_plugins.rediscache.noexceptions import RedisCacheNoExceptions
from stratacache_plugins.rediscache.options import (
    RedisCacheAtomicOptions,
    RedisCacheNoExceptionsOptions,
    RedisCacheOptions,
)

__all__ = [
    "AtomicWaitTimeout",
    "RedisCache",
    "RedisCacheAtomic",
    "RedisCacheAtomicOptions",
    "RedisCacheError",
    "RedisCacheNoExceptions",
    "RedisCacheNoExceptionsOptions",
    "RedisCacheOptions",
]
