"""Fork safety: a child process gets fresh locks and empty flight tables.

``fork()`` copies a process with the state of every lock as it was, but only the thread
that forked. A lock another thread held at that moment stays held in the child forever, and
a flight another thread was leading is never finished there. Every object of stratacache
that owns a lock registers it here (:func:`renew_in_child`); after a fork, the child replaces
each with a new, free lock of the same kind and calls the object's ``_after_fork()`` if it
has one (single flight empties its table there). Redis pools are renewed by the Redis plugin
itself (``rediscache/connection.py``).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["renew_in_child"]

_registered: dict[int, tuple[weakref.ref[Any], tuple[str, ...]]] = {}
_guard = threading.Lock()


def renew_in_child(owner: object, *locks: str) -> None:
    """Give ``owner`` new locks for the attributes ``locks`` in a forked child.

    ``owner`` is held weakly; its locks are the ``threading.Lock``/``RLock`` objects (or
    ``Event``s) in those attributes when the child starts.
    """
    key = id(owner)

    def forget(_: weakref.ref[Any], key: int = key) -> None:
        _registered.pop(key, None)

    with _guard:
        _registered[key] = (weakref.ref(owner, forget), locks)


def _fresh(old: object) -> object:
    if isinstance(old, threading.Event):
        return threading.Event()
    if type(old) is type(threading.RLock()):
        return threading.RLock()
    return threading.Lock()


def _after_fork_in_child() -> None:
    global _guard
    _guard = threading.Lock()
    for ref, names in list(_registered.values()):
        owner = ref()
        if owner is None:
            continue
        for name in names:
            setattr(owner, name, _fresh(getattr(owner, name)))
        after = getattr(owner, "_after_fork", None)
        if callable(after):
            after()


os.register_at_fork(after_in_child=_after_fork_in_child)
