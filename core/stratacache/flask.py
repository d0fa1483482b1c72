"""The seed's import path of the Flask integration, which lives in a plugin.

``from stratacache.flask import Cache`` keeps working; the code is
:mod:`stratacache_plugins.flask` (core holds no Flask code).
"""

from stratacache_plugins.flask import (
    EXTENSION_NAME,
    FLASK_CACHING_BACKENDS,
    IGNORED_KEYS,
    UNSUPPORTED_KEYS,
    Cache,
    CachedView,
    QueryArgs,
    init_app,
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
