"""Hook specifications: the points where a plugin can extend or observe stratacache.

A plugin is a module or object with functions marked :data:`hookimpl` whose names are the
specs below. Plugins are found through the entry-point group ``stratacache.plugins`` and
loaded once, when the cache is configured (:func:`stratacache.configure`); a plugin can also
be registered by hand with ``stratacache.plugin_manager().register(obj)`` before configuring.
An implementation may accept any subset of a spec's arguments, by name.

The operation hooks (get, set, delete, clear_group, clear, serialize, deserialize) wrap the
real work; each tier's operations call them with the tier's name as ``layer``. stratacache
itself implements each of them last (``trylast``) to do the work, so a plugin can:

* observe or time an operation with a wrapper (``@hookimpl(wrapper=True)``, ``result = yield``),
  which also lets it change the result (encryption of serialized bytes, for instance);
* answer in place of the backend by returning a value that is not ``None`` (``tryfirst=True``).

When no plugin implements an operation hook, the hot path calls the backend directly: a plugin
costs nothing until it is installed.

The other hooks are never on the hot path: ``stratacache_register_serializers`` is called once,
when the plugins are loaded, and ``stratacache_configured`` after each configuration of a
stack. A metrics plugin implements the latter and reads ``stack.stats()`` when it is scraped,
which costs the cached calls nothing. ``stratacache_slow_path`` wraps the steps of a
decorated call after its first tier missed (a tracing plugin opens a span in it); a hit in
the first tier never reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from stratacache.backend import Backend, Computation
    from stratacache.options import BackendOptions
    from stratacache.serializers import Serializer
    from stratacache.settings import CacheSettings
    from stratacache.stack import CacheStack

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "stratacache"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a function in this module as a hook specification."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's function as the implementation of the hook of the same name."""


@hookspec
def stratacache_register_serializers(register: Callable[[str, Serializer], None]) -> None:
    """Register serializers that ``CACHE_SERIALIZER`` can select by name.

    Called once, when the plugins are loaded.

    Args:
        register: Call ``register(name, serializer)`` for each serializer; ``serializer`` has
            ``dumps(value) -> bytes`` and ``loads(bytes) -> value`` and raises
            :class:`~stratacache.SerializationError` / :class:`~stratacache.DeserializationError`
            on failure. Registering a name twice raises :class:`~stratacache.PluginError`.

    All implementations are called; the return value is ignored.
    """


@hookspec
def stratacache_configured(stack: CacheStack, settings: CacheSettings) -> None:
    """React to a layer stack being configured: export its statistics, check its settings.

    Called by :meth:`CacheStack.configure() <stratacache.CacheStack.configure>` every time
    it has built the layers (so also on the first use of an unconfigured stack), after the
    new layers are in place. The stack's statistics, :meth:`stack.stats()
    <stratacache.CacheStack.stats>`, carry on across calls: a plugin that reads them (the
    Prometheus exporter, ``stratacache_plugins.prometheus``) should register each stack once.

    Args:
        stack: The stack just configured (``stratacache.cache`` or one of your own).
        settings: The settings it was built from.

    All implementations are called; the return value is ignored.
    """


@hookspec(firstresult=True)
def stratacache_get(
    layer: str, backend: Backend, key: str, group: str | None, remaining: list[float | None] | None
) -> Any:
    """Read ``key`` from one tier of the cache.

    Args:
        layer: The tier's name: ``"local"``, ``"local_no_serializer"`` or ``"shared"`` in
            the seed's stack, the ``CACHE_LAYERS`` name otherwise.
        backend: The tier's backend instance.
        key: The key, before the backend adds its own prefix.
        group: The decorated function's ``module.qualname``, or ``None`` (``cache.get``).
        remaining: ``None``, or a one-item list when the engine needs the entry's
            remaining lifetime (to fill the tiers above): the implementation that reads the
            backend stores it there (``Backend.lookup_entry``). A plugin answering in place
            of the backend may leave it ``None`` (unknown).

    Returns:
        The stored value, or :data:`stratacache.NO_VALUE` on a miss. ``None`` means "no
        opinion": the next implementation is asked.

    Stops at the first result that is not ``None``; stratacache's own implementation, called
    last, reads the backend (a stored ``None`` is returned by it alone, so it stays a value).
    """


@hookspec(firstresult=True)
def stratacache_set(  # noqa: PLR0917 (hooks are called with keyword arguments)
    layer: str,
    backend: Backend,
    key: str,
    value: Any,
    timeout: float | None,
    group: str | None,
    computation: Computation | None,
) -> bool | None:
    """Write ``value`` under ``key`` in one tier of the cache.

    Every write goes through this hook: the decorator's, fills of upper tiers,
    ``cache.set``, and ``atomic_writes`` commits.

    Args:
        layer: The tier's name (see :func:`stratacache_get`).
        backend: The tier's backend instance.
        key: The key, before the backend adds its own prefix.
        value: The value to store (any object; ``None`` included).
        timeout: Seconds to keep it; ``None`` for the backend default, ``0`` for no expiry.
        group: The key-tracking group (the decorated function) or ``None``.
        computation: For an ``atomic_writes`` commit, the backend's
            :class:`~stratacache.Computation` (stratacache's implementation calls its
            ``commit`` and records the winning value as ``computation.result``); ``None``
            for a plain write.

    Returns:
        Whether the value was stored; ``None`` means "no opinion".

    Stops at the first result that is not ``None``; stratacache's own implementation, called
    last, writes to the backend.
    """


@hookspec(firstresult=True)
def stratacache_delete(layer: str, backend: Backend, key: str, group: str | None) -> bool | None:
    """Delete ``key`` from one tier of the cache.

    Args:
        layer: The tier's name (see :func:`stratacache_get`).
        backend: The tier's backend instance.
        key: The key, before the backend adds its own prefix.
        group: The decorated function (``f.invalidate``), or ``None`` (``cache.delete``).

    Returns:
        Whether a stored entry was removed; ``None`` means "no opinion".

    Stops at the first result that is not ``None``; stratacache's own implementation, called
    last, deletes from the backend (``Backend.delete_tracked`` with a group, which also drops
    the key from the group's tracking).
    """


@hookspec(firstresult=True)
def stratacache_clear_group(layer: str, backend: Backend, group: str) -> int | None:
    """Delete every entry of one function (``f.clear_cache()``) from one tier.

    Args:
        layer: The tier's name (see :func:`stratacache_get`).
        backend: The tier's backend instance.
        group: The function's ``module.qualname``.

    Returns:
        How many entries went; ``None`` means "no opinion".

    Stops at the first result that is not ``None``; stratacache's own implementation, called
    last, calls ``backend.clear_tracked(group)``.
    """


@hookspec(firstresult=True)
def stratacache_clear(layer: str, backend: Backend) -> bool | None:
    """Delete every entry one tier's backend owns (``cache.clear()``).

    Args:
        layer: The tier's name (see :func:`stratacache_get`).
        backend: The tier's backend instance.

    Returns:
        Whether the backend cleared; ``None`` means "no opinion".

    Stops at the first result that is not ``None``; stratacache's own implementation, called
    last, calls ``backend.clear()``.
    """


@hookspec
def stratacache_options() -> type[BackendOptions] | None:
    """Declare the configuration keys a hook plugin owns, as an options model.

    Called at each configuration. Return a :class:`~stratacache.BackendOptions` subclass
    whose fields are declared with :func:`stratacache.option` (``key="PROMETHEUS"`` is read
    as ``CACHE_PROMETHEUS``); the stack validates them with the other keys and the plugin
    reads its values with :meth:`stack.plugin_options(Model)
    <stratacache.CacheStack.plugin_options>` in :func:`stratacache_configured`.

    All implementations are called; each non-``None`` result is a model.
    """


@hookspec(firstresult=True)
def stratacache_serialize(layer: str, serializer: Serializer, value: Any) -> bytes | None:
    """Turn ``value`` into the bytes a layer stores.

    Args:
        layer: The layer whose backend is storing the value.
        serializer: The layer's serializer (``CACHE_SERIALIZER`` for the shared layer).
        value: The value to serialize.

    Returns:
        The bytes to store; ``None`` means "no opinion". A wrapper can transform the bytes
        returned by the inner implementations (to compress or encrypt them, say).

    Stops at the first result that is not ``None``; stratacache's own implementation, called
    last, calls ``serializer.dumps(value)``.
    """


@hookspec(firstresult=True)
def stratacache_deserialize(layer: str, serializer: Serializer, data: bytes) -> Any:
    """Turn stored bytes back into a value.

    Args:
        layer: The layer whose backend read the bytes.
        serializer: The layer's serializer.
        data: The bytes the serializer wrote (with ``CACHE_SECRET_KEY``, once their
            signature has been verified and removed).

    Returns:
        The value; ``None`` means "no opinion". A plugin that transformed the bytes in
        :func:`stratacache_serialize` undoes it here with ``tryfirst=True`` and returns
        ``serializer.loads(original_bytes)``. Raise
        :class:`~stratacache.DeserializationError` for bytes that cannot be read: the entry
        is then treated as corrupted (a miss, and deleted).

    Stops at the first result that is not ``None``; stratacache's own implementation, called
    last, calls ``serializer.loads(data)`` (a stored ``None`` is returned by it alone).
    """


@hookspec
def stratacache_slow_path(
    event: str, function: str | None, key: str
) -> AbstractContextManager[Any] | None:
    """Wrap one step of a decorated call's slow path: to trace it, time it, log it.

    Called only after the call's first tier missed, never on a hit there, and only when
    some plugin implements it: the steps run unwrapped otherwise. The step runs inside every
    context manager returned (entered in the order returned, exited in reverse, with the
    step's exception if it raised), in the caller's thread or task, so a context a manager
    sets (an OpenTelemetry span) is current while the step runs, around the function's own
    work. It works alike for ``def`` and ``async def`` functions.

    Args:
        event: Which step: ``"miss"``, the rest of the call after the first tier missed (the
            tiers below, then the computation, or the wait for another caller's);
            ``"compute"``, one run of the function inside it; and ``"refresh"``, a
            background refresh of a stale entry that such a call started
            (``refresh_after``, ``stale_after``, ``early_refresh``), on a worker thread or
            a task, in a copy of the starting call's context, with its ``"compute"`` inside.
        function: The decorated function's ``module.qualname``.
        key: The entry's key (it may hold argument values: mind what you export).

    Returns:
        A context manager to enter around the step, or ``None`` for none.

    All implementations are called; each result that is not ``None`` is entered.
    """
