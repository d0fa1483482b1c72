"""The restricted unpickler: pickle loads that refuse every global outside an allow-list.

Unpickling calls whatever callable the bytes name (``os.system``, ``subprocess.Popen``,
``builtins.eval``...). Signed payloads (:mod:`stratacache.signing`) stop planted bytes from
being read at all; for deployments where the secret may leak, ``CACHE_PICKLE_ALLOW`` adds a
second wall: :class:`RestrictedPickleSerializer` resolves each global a pickle names through
:meth:`pickle.Unpickler.find_class`, and refuses any that is neither in :data:`SAFE_GLOBALS`
nor under a module the application lists. A refused global raises :class:`GlobalRefused`, a
:class:`~stratacache.DeserializationError`: the backend treats the entry as unreadable.

A listed name matches by dotted prefix: ``"myapp.models"`` allows ``myapp.models.User`` and
``myapp.models.orders.Order``, not ``myapp.modelsx.User``; ``"myapp.models.User"`` allows
that class alone. Whatever the list, a name is refused when one of its parts is a dunder
(``datetime.__builtins__``), and when it reaches a module (``myapp.models.os``, for a models
module that imports ``os``): a listed module allows its own classes and functions, not what
it imported.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import re
import types
from collections.abc import Callable, Iterable
from typing import Any, Final

from stratacache.errors import DeserializationError
from stratacache.serializers import PickleSerializer, unpickling_failed

__all__ = ["SAFE_GLOBALS", "AllowList", "GlobalRefused", "RestrictedPickleSerializer"]

SAFE_GLOBALS: Final = frozenset(
    {
        # builtins' plain types (protocols 0-2 name them; 3+ have opcodes for most)
        *(
            f"builtins.{name}"
            for name in (
                "bool",
                "bytearray",
                "bytes",
                "complex",
                "dict",
                "float",
                "frozenset",
                "int",
                "list",
                "object",
                "range",
                "set",
                "slice",
                "str",
                "tuple",
            )
        ),
        "collections.ChainMap",
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "datetime.date",
        "datetime.datetime",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "datetime.tzinfo",
        "decimal.Decimal",
        "uuid.SafeUUID",
        "uuid.UUID",
        "zoneinfo.ZoneInfo",
        # what ordinary pickles need: objects under protocols 0-1, bytes under 0-2
        "copyreg._reconstructor",
        "_codecs.encode",
    }
)
"""The globals every restricted load allows, each by its exact dotted name.

Whole modules are not in it: ``uuid`` and ``decimal`` also hold functions that no value
needs (``uuid`` runs commands to find the MAC address).
"""

SAFE_METHODS: Final = frozenset({"zoneinfo.ZoneInfo._unpickle"})
"""The attributes an ordinary pickle reads with ``getattr`` (a ``ZoneInfo`` rebuilds itself
through ``getattr(ZoneInfo, "_unpickle")``): the only ones ``builtins.getattr`` reaches."""

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


class GlobalRefused(DeserializationError):  # noqa: N818 (a DeserializationError, like its base)
    """A pickle names a global the allow-list refuses (see :mod:`stratacache.unpickling`)."""


class AllowList:
    """Which dotted names a restricted load may resolve: :data:`SAFE_GLOBALS` and ``allowed``.

    Args:
        allowed: Module or object names, each allowing itself and every name under it.

    Raises:
        ValueError: An entry is not a dotted name of identifiers.
    """

    __slots__ = ("allowed", "prefixes")

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = tuple(dict.fromkeys(allowed))
        for entry in self.allowed:
            if not isinstance(entry, str) or not _DOTTED.fullmatch(entry):
                raise ValueError(
                    f"{entry!r} is not a dotted module or object name; give names such as"
                    ' "myapp.models" or "myapp.models.User"'
                )
        self.prefixes = tuple(entry + "." for entry in self.allowed)

    def allows(self, dotted: str) -> bool:
        """Whether ``dotted`` (``module.qualname``) is a safe global or under a listed name."""
        if dotted in SAFE_GLOBALS:
            return True
        parts = dotted.split(".")
        if any(part.startswith("__") and part.endswith("__") for part in parts):
            return False
        return dotted in self.allowed or dotted.startswith(self.prefixes)

    def __repr__(self) -> str:
        return f"AllowList({list(self.allowed)!r})"


def _refused(dotted: str, why: str, allow: AllowList) -> GlobalRefused:
    module = dotted.rpartition(".")[0] or dotted
    return GlobalRefused(
        f"refusing to unpickle {dotted}: {why} (CACHE_PICKLE_ALLOW={list(allow.allowed)!r});"
        f" if your application stores it, add {module!r} to CACHE_PICKLE_ALLOW"
    )


class _Unpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose globals go through an :class:`AllowList`.

    Each :class:`RestrictedPickleSerializer` derives its own class with ``_allow`` and the
    memo ``_resolved`` as class attributes: a load then runs no Python ``__init__``.
    """

    _allow: AllowList
    _resolved: dict[tuple[str, str], Any]

    def find_class(self, module: str, name: str) -> Any:
        """Return the global ``module.name`` if the allow-list allows it, else refuse it."""
        found = self._resolved.get((module, name))
        if found is None:
            found = self._resolved[(module, name)] = self._resolve(module, name)
        return found

    def _resolve(self, module: str, name: str) -> Any:
        # Python 2 names (protocols 0-2): __builtin__.set is builtins.set.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        dotted = f"{module}.{name}"
        allow = self._allow
        if dotted == "builtins.getattr":
            return self._method_getter()
        if not allow.allows(dotted):
            raise _refused(dotted, "it is neither a safe default nor under an allowed name", allow)
        first, *rest = name.split(".")
        found = super().find_class(module, first)
        for part in [*rest, None]:
            if isinstance(found, types.ModuleType):
                raise _refused(dotted, f"{found.__name__} is a module, not a class", allow)
            if part is not None:
                found = getattr(found, part)
        return found

    def _method_getter(self) -> Callable[[Any, str], Any]:
        allow = self._allow

        def getattr_safe(obj: Any, name: str) -> Any:
            owner = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
            dotted = f"{owner}.{name}"
            if not isinstance(obj, type) or dotted not in SAFE_METHODS:
                raise _refused(
                    f"builtins.getattr({owner}, {name!r})",
                    f"getattr may read only {', '.join(sorted(SAFE_METHODS))}",
                    allow,
                )
            return getattr(obj, name)

        return getattr_safe


class RestrictedPickleSerializer(PickleSerializer):
    """Pickle whose loads refuse every global the :class:`AllowList` does not allow.

    Writes are plain pickle; reads raise :class:`GlobalRefused` (a
    :class:`~stratacache.DeserializationError`) for a refused global.

    Args:
        allowed: The modules and objects allowed besides :data:`SAFE_GLOBALS`
            (``CACHE_PICKLE_ALLOW``).
        protocol: The pickle protocol of writes.
    """

    name = "pickle"

    def __init__(self, allowed: Iterable[str] = (), protocol: int = pickle.HIGHEST_PROTOCOL):
        super().__init__(protocol)
        self.allow = AllowList(allowed)
        resolved: dict[tuple[str, str], Any] = {}  # the allowed globals, once resolved
        self._unpickler = type(
            "_Unpickler", (_Unpickler,), {"_allow": self.allow, "_resolved": resolved}
        )

    def loads(self, data: bytes) -> Any:
        """Unpickle ``data``; a refused global or unreadable bytes raise DeserializationError."""
        try:
            return self._unpickler(io.BytesIO(data)).load()
        except GlobalRefused:
            raise
        except Exception as exc:  # truncated data, renamed class, moved module, bad protocol...
            raise unpickling_failed(exc) from exc

    def __repr__(self) -> str:
        return f"RestrictedPickleSerializer({list(self.allow.allowed)!r}, protocol={self.protocol})"
