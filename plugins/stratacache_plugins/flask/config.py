"""Flask-Caching's configuration keys, mapped, ignored or refused with advice."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final

from stratacache import CacheSettings, CacheStack, ConfigurationError, installed_backends
from stratacache.settings import KEY_PREFIXES

__all__ = [
    "FLASK_CACHING_BACKENDS",
    "IGNORED_KEYS",
    "UNSUPPORTED_KEYS",
    "settings_from_config",
]

logger = logging.getLogger("stratacache.flask")

_NO_MEMCACHED = "there is no memcached backend; use Redis (CACHE_TYPE=RedisCache)"
_WRITE_ONE = (
    "or write a backend plugin: a stratacache.Backend subclass declared in the"
    ' stratacache.backends entry-point group (stratacache docs, page "Third-party plugins")'
)

IGNORED_KEYS: Final[Mapping[str, str]] = {
    "CACHE_IGNORE_ERRORS": (
        "Flask-Caching applies it to delete_many only, which never fails here on a missing"
        " key; for a cache that survives Redis outages use CACHE_TYPE=RedisCacheNoExceptions"
    ),
    "CACHE_NO_NULL_WARNING": "stratacache never warns about NullCache",
    "CACHE_HASH_METHOD": "keys are readable text (long ones end in a SHA-256 digest)",
    "CACHE_FILE_HASH_METHOD": "FileSystemCache names its files itself",
}
"""Flask-Caching keys that change nothing here: accepted, ignored, logged at INFO."""

UNSUPPORTED_KEYS: Final[Mapping[str, str]] = {
    "CACHE_ARGS": "give the backend's constructor arguments by name in CACHE_OPTIONS",
    "CACHE_SOURCE_CHECK": (
        "keys do not include the function's source; to drop the entries of older code, put"
        " the release in CACHE_KEY_PREFIX or call the function's clear_cache()"
    ),
    "CACHE_ENABLE_SIGNALS": (
        "there are no blinker signals; observe reads with a hook plugin: a"
        " @stratacache.hookimpl(wrapper=True) stratacache_get in a module declared in the"
        ' stratacache.plugins entry-point group (stratacache docs, page "Third-party plugins")'
    ),
    "CACHE_MEMCACHED_SERVERS": f"{_NO_MEMCACHED}, {_WRITE_ONE}",
    "CACHE_MEMCACHED_USERNAME": f"{_NO_MEMCACHED}, {_WRITE_ONE}",
    "CACHE_MEMCACHED_PASSWORD": f"{_NO_MEMCACHED}, {_WRITE_ONE}",
    "CACHE_UWSGI_NAME": f"there is no uWSGI cache backend, {_WRITE_ONE}",
    "CACHE_GCS_BUCKET": f"there is no Google Cloud Storage backend, {_WRITE_ONE}",
}
"""Flask-Caching keys asking for what stratacache lacks, with what to do instead.

Set to an empty value (``None``, ``False``, ``""``, ``[]``: what Flask-Caching's defaults
look like) they ask for nothing and are ignored; set to anything else they are an error.
"""

FLASK_CACHING_BACKENDS: Final = frozenset(
    {
        "NullCache",
        "SimpleCache",
        "FileSystemCache",
        "RedisCache",
        "RedisSentinelCache",
        "RedisClusterCache",
        "MemcachedCache",
        "SASLMemcachedCache",
        "SpreadSASLMemcachedCache",
        "UWSGICache",
        "GoogleCloudStorageCache",
    }
)
"""The ``CACHE_TYPE`` names of Flask-Caching's backends (the first four exist here too)."""

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})

# Flask-Caching's Redis topologies are our RedisCache on that topology, with Flask-Caching's
# defaults there only (from the environment, a Sentinel master name is required).
_TOPOLOGIES: Final[Mapping[str, Mapping[str, Any]]] = {
    "RedisSentinelCache": {
        "CACHE_REDIS_SENTINELS": [("127.0.0.1", 26379)],
        "CACHE_REDIS_SENTINEL_MASTER": "mymaster",
    },
    "RedisClusterCache": {},
}


def settings_from_config(config: Mapping[str, Any]) -> CacheSettings:
    """Validate the cache keys of a Flask config into settings.

    Only keys starting with ``CACHE_`` or ``LOCALCACHE_`` are read; they are the whole
    configuration (keys they lack take their defaults, not the environment's). A
    ``CACHE_TYPE`` naming one of Flask-Caching's backends (``"RedisCache"``,
    ``"flask_caching.backends.RedisCache"``) selects the installed backend of that name;
    ``RedisSentinelCache`` and ``RedisClusterCache`` select RedisCache on that topology
    (Sentinel with Flask-Caching's defaults: master ``mymaster`` at ``127.0.0.1:26379``).

    Raises:
        ConfigurationError: Listing every problem at once: the settings model's, and each
            Flask-Caching key (set to a non-empty value) or backend with no counterpart
            here, with what to do instead.
    """
    relevant = {
        key: value
        for key, value in config.items()
        if isinstance(key, str) and key.upper().startswith(KEY_PREFIXES)
    }
    problems = []
    for key in list(relevant):
        upper = key.upper()
        if upper in IGNORED_KEYS:
            logger.info("%s is ignored: %s", key, IGNORED_KEYS[upper])
            del relevant[key]
        elif upper in UNSUPPORTED_KEYS:
            value = relevant.pop(key)
            if value not in (None, False, "", [], ()):
                problems.append(
                    f"{key}={value!r}: a Flask-Caching key with no stratacache counterpart;"
                    f" {UNSUPPORTED_KEYS[upper]}"
                )
    for key in [k for k in relevant if k.upper() == "CACHE_TYPE"]:
        value = relevant[key]
        topology = _TOPOLOGIES.get(re.split(r"[.:]", value)[-1]) if isinstance(value, str) else None
        if topology is not None:
            relevant[key] = "RedisCache"
            for default_key, default in topology.items():
                relevant.setdefault(default_key, default)
        elif isinstance(value, str):
            name, problem = _backend_name(value)
            if problem is None:
                relevant[key] = name
            else:
                del relevant[key]
                problems.append(f"{key}={value!r}: {problem}")
    try:
        settings = CacheStack.validate(relevant)
    except ConfigurationError as exc:
        problems += exc.problems
    if problems:
        raise ConfigurationError(problems)
    return settings


def _backend_name(value: str) -> tuple[str, str | None]:
    """Translate a Flask-Caching ``CACHE_TYPE`` to a stratacache backend name, or explain."""
    dotted = value.startswith("flask_caching.")
    name = re.split(r"[.:]", value)[-1] if dotted else value
    if not dotted and name not in FLASK_CACHING_BACKENDS:
        return value, None  # ours (or a misspelling, which the settings model explains)
    installed = sorted(b.name for b in installed_backends())
    if name in installed:
        return name, None
    what = f"Flask-Caching's {name}" if name in FLASK_CACHING_BACKENDS else "a Flask-Caching class"
    return value, (
        f"{what} has no stratacache counterpart installed; choose an installed backend"
        f" ({', '.join(installed)}), {_WRITE_ONE}"
    )
