"""stratacache: a fast, safe layered cache for Python services.

In-process tiers sit in front of a shared tier (Redis, a directory) that every instance of
the service sees::

    from stratacache import cached_for

    @cached_for(minutes=5)
    def exchange_rates(currency: str) -> dict[str, float]: ...

Configure it from the environment (``CACHE_LAYERS``, or the seed's ``CACHE_TYPE``,
``LOCALCACHE_TYPE``...) or with :func:`configure`. Everything public is exported here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stratacache.asynconly import AsyncOnlyBackend
from stratacache.backend import NO_VALUE, Backend, Computation, NoValue, Timeout, key_type_error
from stratacache.decorator import AtomicWrites, BoundCachedFunction, CachedFunction, cached_for
from stratacache.default import cache
from stratacache.errors import (
    BackendNotFound,
    CacheError,
    ConfigurationError,
    DeserializationError,
    InvalidBackend,
    PluginError,
    SerializationError,
)
from stratacache.forksafe import renew_in_child
from stratacache.hookspecs import hookimpl, hookspec
from stratacache.layers import Layer, LayerConfig
from stratacache.pluginmanager import plugin_manager
from stratacache.registry import BackendInfo, installed_backends, load_backend
from stratacache.serializers import JsonSerializer, PickleSerializer, Serializer
from stratacache.signing import SignatureError, Signer
from stratacache.stack import CacheStack
from stratacache.stats import BackendStats, StatsSnapshot
from stratacache.tier import Tier, TierConfig, TierSpecOf

if TYPE_CHECKING:
    from stratacache.options import BackendOptions, option
    from stratacache.settings import CacheSettings

__all__ = [
    "NO_VALUE",
    "AsyncOnlyBackend",
    "AtomicWrites",
    "Backend",
    "BackendInfo",
    "BackendNotFound",
    "BackendOptions",
    "BackendStats",
    "BoundCachedFunction",
    "CacheError",
    "CacheSettings",
    "CacheStack",
    "CachedFunction",
    "Computation",
    "ConfigurationError",
    "DeserializationError",
    "InvalidBackend",
    "JsonSerializer",
    "Layer",
    "LayerConfig",
    "NoValue",
    "PickleSerializer",
    "PluginError",
    "SerializationError",
    "Serializer",
    "SignatureError",
    "Signer",
    "StatsSnapshot",
    "Tier",
    "TierConfig",
    "TierSpecOf",
    "Timeout",
    "cache",
    "cached_for",
    "configure",
    "hookimpl",
    "hookspec",
    "installed_backends",
    "key_type_error",
    "load_backend",
    "option",
    "plugin_manager",
    "renew_in_child",
]

__version__ = "0.1.0"

_LAZY = {
    "BackendOptions": "stratacache.options",
    "CacheSettings": "stratacache.settings",
    "option": "stratacache.options",
}
"""Public names whose modules import pydantic and pydantic-settings (about 0.3 s): they load
at first use (the first configure, or an access here), not at ``import stratacache``."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: the next access is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def configure(settings: CacheSettings | Any | None = None, /, **overrides: Any) -> CacheSettings:
    """Configure :data:`cache` (see :meth:`CacheStack.configure`) and return its settings.

    With no argument the environment is read; a mapping is a Flask-style configuration;
    keyword arguments override the environment. It may be called again at any time.
    """
    return cache.configure(settings, **overrides)
