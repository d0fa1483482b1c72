"""stratacache's own implementations of the operation hooks, and the hooked serializer.

Each implementation here runs last (``trylast``) and does the real work, so plugins can wrap
or pre-empt it (see :mod:`stratacache.hookspecs`). The layer stack calls these hooks only when
some plugin implements them; otherwise it calls the backend directly.
"""

from __future__ import annotations

from typing import Any

import pluggy

from stratacache.backend import Backend, Computation, Timeout
from stratacache.hookspecs import hookimpl
from stratacache.serializers import Serializer

__all__ = ["HookedSerializer"]


@hookimpl(trylast=True)
def stratacache_get(backend: Backend, key: str, remaining: list[float | None] | None) -> Any:
    """Read the backend (with the entry's remaining lifetime when asked)."""
    if remaining is None:
        return backend.lookup(key)
    value, remaining[0] = backend.lookup_entry(key)
    return value


@hookimpl(trylast=True)
def stratacache_set(  # noqa: PLR0917 (hooks are called with keyword arguments)
    backend: Backend,
    key: str,
    value: Any,
    timeout: Timeout,
    group: str | None,
    computation: Computation | None,
) -> bool:
    """Write to the backend, tracking the key in its group; or commit a computation."""
    if computation is not None:
        computation.result = computation.commit(value)
        return computation.stored
    return backend.set_tracked(key, value, timeout, group)


@hookimpl(trylast=True)
def stratacache_delete(backend: Backend, key: str, group: str | None) -> bool:
    """Delete from the backend, and from the group's tracking."""
    return bool(backend.delete(key) if group is None else backend.delete_tracked(key, group))


@hookimpl(trylast=True)
def stratacache_clear_group(backend: Backend, group: str) -> int:
    """Delete the group's entries from the backend."""
    return backend.clear_tracked(group)


@hookimpl(trylast=True)
def stratacache_clear(backend: Backend) -> bool:
    """Clear the backend."""
    return bool(backend.clear())


@hookimpl(trylast=True)
def stratacache_serialize(serializer: Serializer, value: Any) -> bytes:
    """Serialize with the layer's serializer."""
    return serializer.dumps(value)


@hookimpl(trylast=True)
def stratacache_deserialize(serializer: Serializer, data: bytes) -> Any:
    """Deserialize with the layer's serializer."""
    return serializer.loads(data)


class HookedSerializer:
    """A serializer that goes through the serialize/deserialize hooks.

    The layer stack gives it to a backend instead of the plain serializer when a plugin
    implements those hooks.
    """

    def __init__(self, inner: Serializer, layer: str, hook: pluggy.HookRelay) -> None:
        self.inner = inner
        self.layer = layer
        self._hook = hook

    def dumps(self, value: Any) -> bytes:
        """Serialize ``value`` through the ``stratacache_serialize`` hook."""
        data: bytes = self._hook.stratacache_serialize(
            layer=self.layer, serializer=self.inner, value=value
        )
        return data

    def loads(self, data: bytes) -> Any:
        """Deserialize ``data`` through the ``stratacache_deserialize`` hook."""
        return self._hook.stratacache_deserialize(
            layer=self.layer, serializer=self.inner, data=data
        )

    def __repr__(self) -> str:
        return f"HookedSerializer({self.inner!r}, layer={self.layer!r})"
