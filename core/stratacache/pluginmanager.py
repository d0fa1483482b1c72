"""The pluggy plugin manager: hook specs, built-in plugins and entry-point plugins.

Hook-implementing plugins (metrics, tracing, encryption, serializers) are declared by packages
in the entry-point group ``stratacache.plugins``. They are loaded once, the first time the
cache is configured, then checked: a plugin implementing a hook that has no spec, or with
arguments the spec does not have, raises :class:`~stratacache.PluginError` naming the plugin
and the hook.
"""

from __future__ import annotations

import difflib
import sys
import threading

import pluggy

from stratacache import hookspecs
from stratacache.errors import PluginError
from stratacache.forksafe import renew_in_child
from stratacache.hookspecs import PROJECT_NAME
from stratacache.serializers import Serializer

__all__ = ["OPERATION_HOOKS", "PLUGINS_GROUP", "load_plugins", "plugin_manager"]

PLUGINS_GROUP = "stratacache.plugins"
"""The entry-point group where packages declare hook-implementing plugins."""

OPERATION_HOOKS = (
    "stratacache_get",
    "stratacache_set",
    "stratacache_delete",
    "stratacache_clear_group",
    "stratacache_clear",
    "stratacache_serialize",
    "stratacache_deserialize",
)
"""The hooks that wrap cache operations; the hot path skips pluggy when none is implemented."""

_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_loaded = False
_serializers: dict[str, Serializer] | None = None


def plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, with the specs and the built-in plugins.

    Plugins registered on it by hand before the cache is configured take part like those
    found through entry points.
    """
    global _manager
    with _lock:
        if _manager is None:
            from stratacache import operations, serializers

            manager = pluggy.PluginManager(PROJECT_NAME)
            manager.add_hookspecs(hookspecs)
            manager.register(serializers, name="stratacache.serializers")
            manager.register(operations, name="stratacache.operations")
            _manager = manager
        return _manager


def load_plugins() -> pluggy.PluginManager:
    """Load the entry-point plugins once, check every registered plugin, return the manager.

    Raises:
        PluginError: A plugin failed to load, implements an unknown hook, or takes
            arguments its hook does not provide.
    """
    global _loaded
    with _lock:
        manager = plugin_manager()
        if not _loaded:
            try:
                manager.load_setuptools_entrypoints(PLUGINS_GROUP)
            except pluggy.PluginValidationError as exc:
                name = manager.get_name(exc.plugin) or getattr(exc.plugin, "__name__", "?")
                detail = str(exc).replace("\n", "; ")
                raise PluginError(
                    f"plugin {name!r} cannot be loaded: {detail}. A hook implementation may"
                    " take only arguments its spec declares (see stratacache.hookspecs)."
                ) from exc
            _loaded = True
        check_plugins(manager)
        return manager


def check_plugins(manager: pluggy.PluginManager) -> None:
    """Raise :class:`PluginError` if a registered plugin implements a hook with no spec.

    An implementation marked ``@hookimpl(optionalhook=True)`` may name a hook stratacache
    does not define (as pluggy's ``check_pending`` allows): a plugin can so implement a hook
    of another stratacache version and still load on this one, where it is never called.

    Args:
        manager: The plugin manager whose registered plugins are checked.

    Raises:
        PluginError: A plugin implements, unmarked, a hook that has no spec; the error names
            the plugin, the hook, the closest known hook and every known hook.
    """
    known = sorted(name for name in dir(hookspecs) if name.startswith("stratacache_"))
    for plugin in manager.get_plugins():
        for caller in manager.get_hookcallers(plugin) or []:
            if caller.spec is not None or all(
                impl.opts["optionalhook"]
                for impl in caller.get_hookimpls()
                if impl.plugin is plugin
            ):
                continue
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise PluginError(
                f"plugin {manager.get_name(plugin)!r} implements hook {caller.name!r},"
                f" which stratacache does not define.{hint} Known hooks: {', '.join(known)}."
                " A hook of another stratacache version is marked"
                " @hookimpl(optionalhook=True)."
            )


def serializers() -> dict[str, Serializer]:
    """Return the serializers registered through the hook, by name (built once)."""
    global _serializers
    with _lock:
        if _serializers is None:
            found: dict[str, Serializer] = {}

            def register(name: str, serializer: Serializer) -> None:
                if name in found:
                    raise PluginError(
                        f"serializer {name!r} is registered twice"
                        f" ({found[name]!r} and {serializer!r}); each name must be unique"
                    )
                if not isinstance(serializer, Serializer):
                    raise PluginError(
                        f"serializer {name!r} ({serializer!r}) lacks dumps() or loads()"
                    )
                found[name] = serializer

            load_plugins().hook.stratacache_register_serializers(register=register)
            _serializers = found
        return _serializers


def implemented_operation_hooks(manager: pluggy.PluginManager) -> frozenset[str]:
    """Return the operation hooks that some plugin other than stratacache implements."""
    ours = manager.get_plugin("stratacache.operations")
    return frozenset(
        name
        for name in OPERATION_HOOKS
        if any(impl.plugin is not ours for impl in getattr(manager.hook, name).get_hookimpls())
    )


def reset() -> None:
    """Forget the manager and everything loaded (for tests and for re-discovery)."""
    global _manager, _loaded, _serializers
    with _lock:
        _manager = None
        _loaded = False
        _serializers = None


renew_in_child(sys.modules[__name__], "_lock")  # a child never inherits a held lock
