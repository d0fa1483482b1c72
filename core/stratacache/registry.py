"""The backend registry: from a name or a dotted path to a :class:`~stratacache.Backend` class.

Backends are found through the entry-point group ``stratacache.backends``: the entry point's
name is the backend's name and its object the backend class. stratacache's own backends are
declared there by its ``pyproject.toml``, exactly as a third-party package declares its own;
this module holds no list of them.

Nothing is imported until a backend is selected, and then only that backend's module: asking
for ``SimpleCache`` never imports the Redis plugin or the ``redis`` package.

The dotted paths of the systems stratacache replaces resolve too, without importing them: a
path under ``shared.caching.backends`` (the seed package), ``flask_caching.backends`` or
``cachelib`` (``cachelib.SimpleCache``, ``cachelib.redis.RedisCache``) names a backend by its
last part, so ``shared.caching.backends.rediscache.RedisCacheNoExceptions``
selects the installed ``RedisCacheNoExceptions`` (see :func:`resolve_alias`).
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, entry_points
from types import MappingProxyType
from typing import Final

from stratacache.backend import Backend
from stratacache.errors import BackendNotFound, InvalidBackend
from stratacache.forksafe import renew_in_child

__all__ = [
    "ALIAS_PREFIXES",
    "BACKENDS_GROUP",
    "BackendInfo",
    "installed_backends",
    "load_backend",
    "resolve_alias",
]

BACKENDS_GROUP = "stratacache.backends"
"""The entry-point group where packages declare backends."""

ALIAS_PREFIXES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "shared.caching.backends": "the seed package shared.caching",
        "flask_caching.backends": "Flask-Caching",
        "cachelib": "cachelib",
    }
)
"""The packages whose backend paths name a stratacache backend by their last part, each with
the system it belongs to (as error messages name it)."""

_ALIAS = re.compile(
    r"(?P<prefix>{})(?:\.[A-Za-z_]\w*)*[.:](?P<name>[A-Za-z_]\w*)".format(
        "|".join(re.escape(prefix) for prefix in ALIAS_PREFIXES)
    )
)

_lock = threading.Lock()
_entry_points: dict[str, EntryPoint] | None = None
_loaded: dict[str, type[Backend]] = {}


@dataclass(frozen=True)
class BackendInfo:
    """An installed backend, as ``stratacache backends`` lists it (nothing is imported)."""

    name: str
    target: str
    distribution: str
    version: str


def _backend_entry_points() -> dict[str, EntryPoint]:
    global _entry_points
    with _lock:
        if _entry_points is None:
            _entry_points = {ep.name: ep for ep in entry_points(group=BACKENDS_GROUP)}
        return _entry_points


def refresh() -> None:
    """Forget what was discovered, so a package installed since is seen."""
    global _entry_points
    with _lock:
        _entry_points = None
        _loaded.clear()


def installed_backends() -> list[BackendInfo]:
    """Return the installed backends, sorted by name, without importing any of them."""
    infos = []
    for name, ep in sorted(_backend_entry_points().items()):
        dist = ep.dist
        infos.append(
            BackendInfo(
                name=name,
                target=ep.value,
                distribution=dist.name if dist else "?",
                version=dist.version if dist else "?",
            )
        )
    return infos


def resolve_alias(path: str) -> str:
    """Return the backend name an old system's dotted path stands for, or ``path`` unchanged.

    A path under one of :data:`ALIAS_PREFIXES`, with ``.`` or ``:`` before the class
    (``shared.caching.backends.rediscache.RedisCacheNoExceptions``,
    ``shared.caching.backends.simple:SimpleCache``,
    ``flask_caching.backends.filesystemcache.FileSystemCache``, ``cachelib.SimpleCache``,
    ``cachelib.file.FileSystemCache``), stands for the installed
    backend named like its last part. Nothing is imported.

    Args:
        path: A backend name or dotted path, as a setting gives it.

    Returns:
        The entry-point name of the backend the path stands for; ``path`` itself when it is
        no such path.

    Raises:
        BackendNotFound: ``path`` is such a path, but no backend named like its last part is
            installed; the error names the path, the installed backends and the closest.
    """
    match = _ALIAS.fullmatch(path)
    if match is None:
        return path
    eps = _backend_entry_points()
    name = match["name"]
    if name in eps:
        return name
    raise BackendNotFound(
        path,
        sorted(eps),
        _closest(name, eps),
        f" (a backend path of {ALIAS_PREFIXES[match['prefix']]}: it selects the installed"
        f" backend named like its last part, and no backend {name!r} is installed)",
    )


def load_backend(name: str) -> type[Backend]:
    """Return the backend class selected by ``name``, importing only its module.

    Args:
        name: An entry-point name (``"SimpleCache"``), a dotted path to a class
            (``"package.module.Class"`` or ``"package.module:Class"``), or the path of a
            backend of the systems stratacache replaces, which :func:`resolve_alias` turns
            into an installed backend's name before anything is imported.

    Raises:
        BackendNotFound: No backend has that name, the dotted path does not import, or an
            old system's path names no installed backend.
        InvalidBackend: The object found is not a :class:`~stratacache.Backend` class.
    """
    cached = _loaded.get(name)
    if cached is not None:
        return cached
    eps = _backend_entry_points()
    alias = resolve_alias(name)
    if alias in eps:
        obj = _load_entry_point(name, eps[alias])
    elif "." in name or ":" in name:
        obj = _import_dotted(name, eps)
    else:
        raise BackendNotFound(name, sorted(eps), _closest(name, eps))
    cls = _check_backend(name, obj)
    _loaded[name] = cls
    return cls


def _closest(name: str, eps: dict[str, EntryPoint]) -> str | None:
    by_lower = {n.lower(): n for n in eps}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def _load_entry_point(name: str, ep: EntryPoint) -> object:
    try:
        return ep.load()
    except ImportError as exc:
        dist = ep.dist.name if ep.dist else "its distribution"
        missing = getattr(exc, "name", None) or ""
        extra = _extra_requiring(ep.dist, missing)
        if missing and ep.module.startswith(missing):
            fix = f"the entry point is stale: reinstall {dist}"
        elif extra:
            fix = f"install what it needs: pip install '{dist}[{extra}]'"
        else:
            fix = (
                f"install the package that provides {missing or 'it'!r}, for instance"
                f" pip install '{dist}[extra]' with the extra its documentation names"
            )
        raise BackendNotFound(
            name,
            sorted(_backend_entry_points()),
            None,
            f" (installed by {dist}, but importing {ep.value!r} failed: {exc}; {fix})",
        ) from exc


def _extra_requiring(dist: Distribution | None, module: str) -> str | None:
    """Return the extra of ``dist`` that installs the package of ``module``, if one does.

    The extra named after the package wins (``stratacache[redis]`` over any other extra
    that lists redis).
    """
    if dist is None or not module:
        return None
    wanted = re.sub(r"[-_.]+", "-", module.partition(".")[0]).lower()
    extras = []
    for requirement in dist.requires or ():
        spec, _, marker = requirement.partition(";")
        name = re.split(r"[\s<>=!~\[(;]", spec.strip(), maxsplit=1)[0]
        extra = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", marker)
        if extra and re.sub(r"[-_.]+", "-", name).lower() == wanted:
            extras.append(extra.group(1))
    return min(extras, key=lambda e: (e != wanted, e), default=None)


def _import_dotted(path: str, eps: dict[str, EntryPoint]) -> object:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendNotFound(
            path, sorted(eps), None, f" (cannot import module {module_name!r}: {exc})"
        ) from exc
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise BackendNotFound(
                path, sorted(eps), None, f" (module {module_name!r} has no attribute {attr!r})"
            ) from exc
    return obj


def _check_backend(name: str, obj: object) -> type[Backend]:
    if isinstance(obj, type) and issubclass(obj, Backend):
        return obj
    what = f"the class {obj.__qualname__}" if isinstance(obj, type) else repr(obj)
    if isinstance(obj, type):
        missing = [
            m
            for m in ("lookup", "set_tracked", "clear_tracked", "from_options")
            if not hasattr(obj, m)
        ]
        lacks = (
            f"it does not derive from stratacache.Backend (it lacks {', '.join(missing)})"
            if missing
            else "it does not derive from stratacache.Backend"
        )
    else:
        lacks = "it is not a class"
    raise InvalidBackend(
        f"{name!r} resolves to {what}, which is not a stratacache backend: {lacks}."
        " A backend is a class deriving from stratacache.Backend (for instance"
        " 'class MyCache(stratacache.Backend): ...')."
    )


renew_in_child(sys.modules[__name__], "_lock")  # a child never inherits a held lock
