"""The exception tree of stratacache: one root, :class:`CacheError`.

Every error raised on purpose by stratacache derives from :class:`CacheError`, so a caller
can catch the whole family in one clause; each also derives from the built-in exception a
Python programmer would expect (``LookupError``, ``ValueError``, ...), so existing handlers
keep working. Errors raised while handling another one chain it with ``from``.
"""

from __future__ import annotations

import pickle
import reprlib

__all__ = [
    "BackendNotFound",
    "CacheError",
    "ComputeTimeout",
    "ConfigurationError",
    "DeserializationError",
    "InvalidBackend",
    "PluginError",
    "SerializationError",
    "key_type_error",
]


class CacheError(Exception):
    """Root of every exception stratacache raises on purpose."""


class ConfigurationError(CacheError, ValueError):
    """The settings are invalid; the message lists every problem, naming each key.

    Attributes:
        problems: One line per problem: the key, the bad value and what is accepted.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        heading = f"invalid stratacache configuration ({count} problem{'s' * (count != 1)}):"
        super().__init__("\n  - ".join([heading, *problems]))


class BackendNotFound(CacheError, LookupError):  # noqa: N818 (name kept for our users' vocabulary)
    """No backend is installed under a name, or a dotted path does not import.

    Attributes:
        name: The name or dotted path that was asked for.
        installed: The names of the installed backends (entry points).
        suggestion: The installed name closest to ``name``, if any is close.
    """

    def __init__(
        self, name: str, installed: list[str], suggestion: str | None, detail: str = ""
    ) -> None:
        self.name = name
        self.installed = installed
        self.suggestion = suggestion
        parts = [f"unknown cache backend {name!r}{detail}."]
        if suggestion:
            parts.append(f"Did you mean {suggestion!r}?")
        parts.append(f"Installed backends: {', '.join(installed) or '(none)'}.")
        parts.append(
            "Give an installed name, or the dotted path of a backend class"
            " ('package.module.Class' or 'package.module:Class')."
        )
        super().__init__(" ".join(parts))


class InvalidBackend(CacheError, TypeError):  # noqa: N818 (reads better at the raise site)
    """An object was selected as a backend but is not a :class:`stratacache.Backend` class."""


class PluginError(CacheError):
    """A hook-implementing plugin is broken: it names the plugin and the hook at fault."""


class SerializationError(CacheError, pickle.PicklingError):
    """A value could not be serialized; nothing was stored.

    It derives from :class:`pickle.PicklingError`, as cachelib documents for ``set``.
    """


class DeserializationError(CacheError, pickle.UnpicklingError):
    """Stored bytes could not be turned back into a value (corrupted, or from old code)."""


class ComputeTimeout(CacheError, TimeoutError):  # noqa: N818 (reads as what happened)
    """A computation outlived the function's ``hard_timeout``; it finishes in the background.

    Its result is stored when it finishes, so a later call may find it.
    """


def key_type_error(key: object) -> TypeError:
    """The error every backend raises for a key that is not a ``str``.

    Keys are text in every backend (cachelib's contract), so that a program that works on
    one backend works on all: an int or a tuple that an in-memory dict would take is refused
    by all of them alike, not only by those that send keys over the wire.
    """
    return TypeError(
        f"cache keys are str, got {type(key).__name__} {reprlib.repr(key)}: pass str(key), or"
        " let cached_for build the key from the function's arguments, of any type"
    )
