"""Flask integration: Flask-Caching's ``Cache``, over stratacache's tiers.

A Flask-Caching application switches by changing one import::

    from stratacache.flask import Cache  # was: from flask_caching import Cache

    cache = Cache(app)  # or: cache = Cache(); cache.init_app(app)


    @app.route("/rates")
    @cache.cached(timeout=60)
    def rates(): ...


    @cache.memoize(timeout=300)
    def exchange_rates(currency): ...

An ``async def`` view or function is cached the same way (Flask runs it with
``app.ensure_sync``, which needs ``flask[async]``), with the same keys and rules.

``init_app`` reads the ``CACHE_*`` and ``LOCALCACHE_*`` keys of ``app.config`` (Flask's own
keys are ignored), validates them with :class:`~stratacache.CacheSettings` and configures the
process-wide :data:`stratacache.cache`, so ``@cached_for`` functions and the ``Cache`` share
the same layers. Flask-Caching keys that change nothing here (``CACHE_NO_NULL_WARNING``,
``CACHE_IGNORE_ERRORS``, the hash methods) are ignored; those asking for something stratacache
lacks (memcached servers, Sentinels, ``CACHE_ARGS``...) are errors unless empty, each saying
what to do instead, reported together with every other problem of the configuration.

It needs Flask (``pip install 'stratacache[flask]'``); importing :mod:`stratacache` never
imports this module. The code lives in this plugin package; ``stratacache.flask`` is the
seed's import path for it.
"""

from __future__ import annotations

try:
    import flask  # noqa: F401 (checks the extra is installed)
except ImportError as exc:  # pragma: no cover - tested in a subprocess (test_flask.py)
    raise ImportError(
        f"stratacache.flask needs Flask ({exc}): pip install 'stratacache[flask]'"
    ) from exc

from stratacache_plugins.flask.cache import EXTENSION_NAME, Cache, CachedView, QueryArgs, init_app
from stratacache_plugins.flask.config import (
    FLASK_CACHING_BACKENDS,
    IGNORED_KEYS,
    UNSUPPORTED_KEYS,
    settings_from_config,
)

__all__ = [
    "EXTENSION_NAME",
    "FLASK_CACHING_BACKENDS",
    "IGNORED_KEYS",
    "UNSUPPORTED_KEYS",
    "Cache",
    "CachedView",
    "QueryArgs",
    "init_app",
    "settings_from_config",
]
