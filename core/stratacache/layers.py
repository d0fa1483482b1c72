"""The layer stack: the process-wide cache, built from the settings.

:data:`stratacache.cache` is a :class:`CacheStack` with three layers, each a :class:`Layer`
holding its backend (``.cache``) and its configuration (``.config``):

* ``local_cache``: in-process, values serialized (``LOCALCACHE_TYPE``, SimpleCache);
* ``local_cache_no_serializer``: in-process, values kept by reference
  (``LOCALCACHE_NO_SERIALIZER_TYPE``, SimpleCacheNoSerializer);
* ``shared_cache``: seen by every instance of the service (``CACHE_TYPE``).

Reads go local first, then shared; a shared hit fills the local layer. Writes go to the
shared layer, then the local one, whose copy lives at most ``LOCALCACHE_DEFAULT_TIMEOUT``.

Each stack counts what happens in its layers and decorated functions
(:meth:`CacheStack.stats`; see :mod:`stratacache.stats`), unless ``CACHE_STATS`` is false.
"""

from __future__ import annotations

import builtins
import inspect
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy

from stratacache.backend import NO_VALUE, Backend, Timeout
from stratacache.errors import ConfigurationError
from stratacache.operations import HookedSerializer
from stratacache.pluginmanager import implemented_operation_hooks, load_plugins, serializers
from stratacache.registry import load_backend
from stratacache.serializers import PickleSerializer, Serializer
from stratacache.settings import MASK, CacheSettings, mask_url
from stratacache.stats import BackendStats, LayerStats, StackStats, StatsSnapshot

__all__ = ["CacheStack", "Layer", "LayerConfig", "LayerName", "local_timeout"]

logger = logging.getLogger(__name__)

LayerName = Literal["local", "local_no_serializer", "shared"]


@dataclass(frozen=True)
class LayerConfig:
    """The validated configuration of one layer.

    Attributes:
        type: The backend as configured (an entry-point name or a dotted path).
        backend: The backend class it resolved to.
        options: The arguments the backend was built from (secrets masked).
        settings: The whole settings object the layer was built from.
    """

    type: str
    backend: builtins.type[Backend]
    options: Mapping[str, Any]
    settings: CacheSettings = field(repr=False)


class Layer:
    """One layer of the stack: a backend and the operations the decorator calls on it.

    Attributes:
        name: ``"local"``, ``"local_no_serializer"`` or ``"shared"``.
        cache: The backend instance.
        config: Its :class:`LayerConfig`.
        lookup: ``lookup(key)``, the value or :data:`~stratacache.NO_VALUE`.
        store: ``store(key, value, timeout, group)``, a tracked write.
        remove: ``remove(key)``, a delete.
        stats: The layer's :class:`~stratacache.stats.LayerStats`, which the ``counted_*``
            methods increment (the stack's, or a throwaway one when ``CACHE_STATS`` is off).
    """

    __slots__ = ("cache", "config", "lookup", "name", "remove", "stats", "store")

    def __init__(
        self, name: LayerName, cache: Backend, config: LayerConfig, hook: pluggy.HookRelay | None
    ) -> None:
        self.name = name
        self.cache = cache
        self.config = config
        # Without plugins, the layer's operations are the backend's own bound methods: the hot
        # path makes no pluggy call.
        self.lookup: Callable[[str], Any] = cache.lookup
        self.store: Callable[[str, Any, Timeout, str | None], bool] = cache.set_tracked
        self.remove: Callable[[str], bool] = cache.delete
        self.stats = LayerStats()
        if hook is not None:
            self._hook_operations(hook)

    def counted_lookup(self, key: str) -> Any:
        """:attr:`lookup`, counted as a hit or a miss of the layer."""
        value = self.lookup(key)
        if value is NO_VALUE:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    def counted_store(self, key: str, value: Any, timeout: Timeout, group: str | None) -> bool:
        """:attr:`store`, counted as a set of the layer when the backend accepts it."""
        stored = self.store(key, value, timeout, group)
        if stored:
            self.stats.sets += 1
        return stored

    def counted_remove(self, key: str) -> bool:
        """:attr:`remove`, counted as a delete of the layer when an entry went."""
        removed = self.remove(key)
        if removed:
            self.stats.deletes += 1
        return removed

    def _hook_operations(self, hook: pluggy.HookRelay) -> None:
        name, cache = self.name, self.cache

        def lookup(key: str) -> Any:
            return hook.stratacache_get(layer=name, backend=cache, key=key)

        def store(key: str, value: Any, timeout: Timeout, group: str | None) -> bool:
            return bool(
                hook.stratacache_set(
                    layer=name, backend=cache, key=key, value=value, timeout=timeout, group=group
                )
            )

        def remove(key: str) -> bool:
            return bool(hook.stratacache_delete(layer=name, backend=cache, key=key))

        self.lookup, self.store, self.remove = lookup, store, remove

    def __repr__(self) -> str:
        return f"<Layer {self.name}: {self.cache!r}>"


_TYPE_KEYS = {
    "shared": "CACHE_TYPE",
    "local": "LOCALCACHE_TYPE",
    "local_no_serializer": "LOCALCACHE_NO_SERIALIZER_TYPE",
}
_OPTION_KEYS = {  # the settings each generic backend option comes from, by layer
    "shared": {
        "default_timeout": "CACHE_DEFAULT_TIMEOUT",
        "threshold": "CACHE_THRESHOLD",
        "key_prefix": "CACHE_KEY_PREFIX",
        "cache_dir": "CACHE_DIR",
        "serializer": "CACHE_SERIALIZER",
        "host": "CACHE_REDIS_HOST",
        "port": "CACHE_REDIS_PORT",
        "db": "CACHE_REDIS_DB",
        "password": "CACHE_REDIS_PASSWORD",
        "url": "CACHE_REDIS_URL",
        "connect_timeout": "CACHE_REDIS_CONNECT_TIMEOUT",
        "read_timeout": "CACHE_REDIS_READ_TIMEOUT",
        "lock_timeout": "CACHE_ATOMIC_LOCK_TIMEOUT",
        "lock_wait": "CACHE_ATOMIC_WAIT",
        "atomic_retries": "CACHE_ATOMIC_RETRIES",
        "secret_key": "CACHE_SECRET_KEY",
    },
    "local": {"default_timeout": "LOCALCACHE_DEFAULT_TIMEOUT", "threshold": "LOCALCACHE_THRESHOLD"},
}


def _rejected(
    layer: LayerName,
    backend_cls: builtins.type[Backend],
    exc: Exception,
    *,
    options: Mapping[str, Any],
    explicit: Mapping[str, Any],
    type_: str,
) -> str:
    """Describe a backend's refusal of its arguments as a problem naming the setting at fault."""
    name, text = backend_cls.__qualname__, str(exc)

    def mentioned(option: str) -> bool:
        return re.search(rf"\b{re.escape(option)}\b", text) is not None

    if explicit and (isinstance(exc, TypeError) or any(map(mentioned, explicit))):
        accepted = ", ".join(inspect.signature(backend_cls).parameters)
        return (
            f"CACHE_OPTIONS={_masked(explicit)!r}: {name} rejects these arguments ({exc});"
            f" it accepts: {accepted}"
        )
    shown = _masked(options)
    if isinstance(exc, OSError):
        detail = f"{exc}; give a path this process can create and write to"
    else:
        detail = text
    for option, key in _OPTION_KEYS.get(layer, _OPTION_KEYS["local"]).items():
        filename = getattr(exc, "filename", None)
        if option in options and (mentioned(option) or filename == options[option]):
            return f"{key}={shown[option]!r}: {name} refuses it: {detail}"
    return f"{_TYPE_KEYS[layer]}={type_!r}: {name} cannot be built from the settings: {detail}"


def _masked(options: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(options)
    for secret in ("password", "secret_key"):
        if shown.get(secret):
            shown[secret] = MASK
    for name in ("url", "host"):
        if isinstance(shown.get(name), str):
            shown[name] = mask_url(shown[name])
    return shown


_warned_unsigned = False


def _check_signing(shared: Layer, settings: CacheSettings) -> None:
    """Warn once per process when pickles from outside the process are read unsigned.

    Raises:
        ConfigurationError: ``CACHE_SECRET_KEY`` is set but the shared backend keeps bytes
            outside the process and did not take the key: it would store unsigned payloads.
    """
    global _warned_unsigned
    backend = shared.cache
    if settings.cache_secret_key and not backend.in_process and backend.signer is None:
        raise ConfigurationError(
            [
                f"CACHE_SECRET_KEY is set, but the shared backend {shared.config.type}"
                f" ({type(backend).__qualname__}) does not take a secret_key, so it would store"
                " unsigned payloads; use a backend that signs (RedisCache, FileSystemCache...),"
                " or make this one accept secret_key and store through Backend.dump_value and"
                " load_value (docs/security.md)"
            ]
        )
    if (
        _warned_unsigned
        or backend.in_process
        or backend.signer is not None
        or settings.cache_serializer != "pickle"
    ):
        return
    _warned_unsigned = True
    logger.warning(
        "the shared layer (%s) stores pickles without a signature: whoever can write to it"
        " can run code in this process. Set CACHE_SECRET_KEY to sign every payload (see"
        " docs/security.md).",
        type(backend).__name__,
    )


def local_timeout(timeout: float, local_default: float) -> float:
    """Return how long a local copy of an entry kept ``timeout`` seconds may live (0 = ever)."""
    if timeout == 0:
        return local_default
    if local_default == 0:
        return timeout
    return min(timeout, local_default)


@dataclass(frozen=True)
class _Layers:
    settings: CacheSettings
    local: Layer
    local_no_serializer: Layer
    shared: Layer
    counting: bool = field(init=False)  # CACHE_STATS, read by the decorator's hot path

    def __post_init__(self) -> None:
        object.__setattr__(self, "counting", self.settings.cache_stats)


class CacheStack:
    """The process-wide two-layer cache (``stratacache.cache``).

    Built by :meth:`configure`; the first use without it configures from the environment.
    Reconfiguring swaps every layer at once, safely under threads: a call in progress
    finishes on the layers it started with. Statistics (:meth:`stats`) belong to the stack
    and survive reconfiguration.
    """

    def __init__(self) -> None:
        self._state: _Layers | None = None
        self._lock = threading.RLock()
        self._stats = StackStats()

    # -- configuration --------------------------------------------------------------------

    def configure(
        self, settings: CacheSettings | Mapping[str, Any] | None = None, /, **overrides: Any
    ) -> CacheSettings:
        """Build (or rebuild) the layers and return the settings they were built from.

        Args:
            settings: A :class:`CacheSettings`, a Flask-style mapping of ``CACHE_*`` keys
                (the whole configuration), or ``None`` to read the environment.
            **overrides: Keys that override the environment when ``settings`` is ``None``.

        Raises:
            ConfigurationError: The settings are invalid (every problem listed).
            PluginError: A plugin is broken.
        """
        if settings is None:
            resolved = CacheSettings(**overrides)
        elif overrides:
            raise TypeError("give either settings or keyword overrides to configure(), not both")
        elif isinstance(settings, CacheSettings):
            resolved = settings
        elif isinstance(settings, Mapping):
            resolved = CacheSettings.from_mapping(settings)
        else:
            raise TypeError(
                "configure() takes a mapping of CACHE_* keys (a dict, a Flask config), a"
                f" CacheSettings, or nothing to read the environment; got {settings!r:.80}."
                " Write configure({'CACHE_TYPE': 'SimpleCache'}) or configure(CACHE_TYPE=...)"
            )
        with self._lock:
            state = self._build(resolved)
            self._attach_stats(state)
            self._state = state
        logger.debug(
            "stratacache configured: local=%s shared=%s",
            resolved.localcache_type,
            resolved.cache_type,
        )
        load_plugins().hook.stratacache_configured(stack=self, settings=resolved)
        return resolved

    def _attach_stats(self, state: _Layers) -> None:
        """Give each new layer, and its backend, the stack's counters (or throwaway ones)."""
        stats = self._stats
        stats.enabled = state.counting
        for layer in self._all(state):
            if state.counting:
                layer.stats = stats.layers[layer.name]
                built = getattr(layer.cache, "stats", None)  # counted while it was built
                if isinstance(built, BackendStats):
                    layer.stats.add(built)
            layer.cache.stats = layer.stats

    def _build(self, settings: CacheSettings) -> _Layers:
        manager = load_plugins()
        hooked = implemented_operation_hooks(manager)
        layer_hook = (
            manager.hook
            if hooked & {"stratacache_get", "stratacache_set", "stratacache_delete"}
            else None
        )
        serializer_hooked = bool(hooked & {"stratacache_serialize", "stratacache_deserialize"})

        def serializer_for(layer: LayerName, base: Serializer) -> Serializer:
            return HookedSerializer(base, layer, manager.hook) if serializer_hooked else base

        def build(
            layer: LayerName, type_: str, options: dict[str, Any], explicit: Mapping[str, Any]
        ) -> Layer:
            backend_cls = load_backend(type_)
            keys = _OPTION_KEYS.get(layer, _OPTION_KEYS["local"])
            shadowed = [k for k in explicit if k in options]
            if shadowed:  # one source of truth: the validated setting
                raise ConfigurationError(
                    [
                        f"CACHE_OPTIONS={_masked(explicit)!r}: {k!r} is a setting of its own;"
                        f" set {keys.get(k, 'its CACHE_* key')} instead"
                        for k in shadowed
                    ]
                )
            try:
                backend = backend_cls.from_options(options, explicit=explicit)
            except (TypeError, ValueError, OSError) as exc:
                problem = _rejected(
                    layer, backend_cls, exc, options=options, explicit=explicit, type_=type_
                )
                raise ConfigurationError([problem]) from exc
            passed = {**backend_cls.accepted_options(options), **explicit}
            config = LayerConfig(type_, backend_cls, _masked(passed), settings)
            return Layer(layer, backend, config, layer_hook)

        password = settings.cache_redis_password
        shared = build(
            "shared",
            settings.cache_type,
            {
                "default_timeout": settings.cache_default_timeout,
                "threshold": settings.cache_threshold,
                "key_prefix": settings.cache_key_prefix,
                "cache_dir": settings.cache_dir,
                "serializer": serializer_for("shared", serializers()[settings.cache_serializer]),
                "host": settings.cache_redis_host,
                "port": settings.cache_redis_port,
                "db": settings.cache_redis_db,
                "password": password.get_secret_value() if password else None,
                "url": settings.cache_redis_url,
                "connect_timeout": settings.cache_redis_connect_timeout,
                "read_timeout": settings.cache_redis_read_timeout,
                "lock_timeout": settings.cache_atomic_lock_timeout,
                "lock_wait": settings.cache_atomic_wait,
                "atomic_retries": settings.cache_atomic_retries,
                "secret_key": [k.get_secret_value() for k in settings.cache_secret_key] or None,
            },
            settings.cache_options,
        )
        _check_signing(shared, settings)
        local_options: dict[str, Any] = {
            "default_timeout": settings.localcache_default_timeout,
            "threshold": settings.localcache_threshold,
        }
        local = build(
            "local",
            settings.localcache_type,
            {**local_options, "serializer": serializer_for("local", PickleSerializer())},
            {},
        )
        no_serializer = build(
            "local_no_serializer", settings.localcache_no_serializer_type, local_options, {}
        )
        return _Layers(settings, local, no_serializer, shared)

    def _layers(self) -> _Layers:
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    self.configure()
                state = self._state
                assert state is not None
        return state

    # -- the monitoring attributes --------------------------------------------------------

    @property
    def settings(self) -> CacheSettings:
        """The settings the layers were built from."""
        return self._layers().settings

    @property
    def local_cache(self) -> Layer:
        """The in-process layer that stores serialized copies."""
        return self._layers().local

    @property
    def local_cache_no_serializer(self) -> Layer:
        """The in-process layer that stores objects by reference."""
        return self._layers().local_no_serializer

    @property
    def shared_cache(self) -> Layer:
        """The layer every instance of the service shares."""
        return self._layers().shared

    # -- operations across layers ---------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key`` from the first layer that has it, else ``default``.

        A shared hit is copied into the local layer.
        """
        layers = self._layers()
        value = layers.local.counted_lookup(key)
        if value is NO_VALUE:
            value = layers.shared.counted_lookup(key)
            if value is NO_VALUE:
                return default
            layers.local.counted_store(key, value, self._local_timeout(layers, None), None)
        return value

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` in the shared layer, then in the local one; return the shared result.

        Args:
            key: The key.
            value: Any value the serializer accepts (``None`` included).
            timeout: Seconds (or a timedelta); ``None`` for ``CACHE_DEFAULT_TIMEOUT``; 0 for
                no expiry. The local copy lives at most ``LOCALCACHE_DEFAULT_TIMEOUT``.
        """
        layers = self._layers()
        stored = layers.shared.counted_store(key, value, timeout, None)
        layers.local.counted_store(key, value, self._local_timeout(layers, timeout), None)
        return stored

    def delete(self, key: str) -> bool:
        """Delete ``key`` from every layer; return whether any layer held it."""
        return self._remove_everywhere(key) > 0

    def _remove_everywhere(self, key: str) -> int:
        """Delete ``key`` from every layer (each is asked); return how many held it."""
        return sum(layer.counted_remove(key) for layer in self._all(self._layers()))

    def clear(self) -> bool:
        """Clear every layer; return True if all did.

        Each backend clears what it owns: Redis only the keys under its prefix,
        FileSystemCache every entry of its directory (give each application its own).
        """
        cleared = [bool(layer.cache.clear()) for layer in self._all(self._layers())]
        return all(cleared)

    def clear_group(self, group: str) -> int:
        """Delete every entry tracked in ``group`` from every layer; return how many went."""
        removed = 0
        for layer in self._all(self._layers()):
            count = layer.cache.clear_tracked(group)
            layer.stats.deletes += count
            removed += count
        return removed

    # -- statistics -----------------------------------------------------------------------

    def stats(self) -> StatsSnapshot:
        """Return the stack's statistics: a plain, JSON-serializable dict.

        ``{"enabled": ..., "layers": {"local": {...}, "local_no_serializer": {...},
        "shared": {...}}, "functions": {"module.qualname": {...}}}``: per layer ``hits``,
        ``misses``, ``sets``, ``deletes``, ``errors``, ``deserialization_failures`` and
        ``lock_waits``; per decorated function ``local_hits``, ``shared_hits``, ``misses``,
        ``sets``, ``deletes``, ``errors``, ``computations``, ``compute_errors``,
        ``compute_seconds`` and ``lock_waits`` (see :mod:`stratacache.stats` for each).

        The counts are those of this process since the stack was created or
        :meth:`reset_stats` was called; :meth:`configure` keeps them (a layer's counts carry
        on across a change of its backend). With ``CACHE_STATS=false`` nothing is counted
        and ``enabled`` is false. Reading them never configures the stack.
        """
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Set every counter of :meth:`stats` back to zero."""
        self._stats.reset()

    @staticmethod
    def _all(layers: _Layers) -> tuple[Layer, Layer, Layer]:
        return (layers.local, layers.local_no_serializer, layers.shared)

    @staticmethod
    def _local_timeout(layers: _Layers, timeout: Timeout) -> float:
        shared_seconds = layers.shared.cache.timeout_seconds(timeout)
        return local_timeout(shared_seconds, layers.local.cache.default_timeout)

    def __repr__(self) -> str:
        state = self._state
        if state is None:
            return "<CacheStack (not configured yet)>"
        return (
            f"<CacheStack local={state.local.cache!r} shared={state.shared.cache!r}"
            f" local_no_serializer={state.local_no_serializer.cache!r}>"
        )
