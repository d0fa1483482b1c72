"""The names of a Redis backend's keys: entries, tracking sets and locks, under one prefix.

An entry is stored under ``<prefix><key>``, the tracking set of a function under
``<prefix>{<function>}:__tracked__`` (the braces make the function's name its Redis
Cluster hash tag) and an ``at_most_once`` lock under ``<prefix>__lock__:<key>``. Keys
under the prefix are found with ``SCAN``, never ``KEYS``.

The prefix ends at a boundary, so that the keys under it are this application's and no
other's (:func:`namespace`): a prefix that ends with a separator (any character but a
letter or a digit: ``myapp_``, ``myapp:``) is used as written; one that ends
with a letter or a digit gets ``:`` (``myapp`` names its keys ``myapp:...``, so that
``clear()`` leaves ``myapp2:...`` and ``myapplication`` alone). An empty prefix is no
namespace: every key of the database is the application's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.crc import key_slot

from stratacache import Backend, key_type_error
from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = [
    "TRACKING_SUFFIX",
    "PrefixKeys",
    "RedisKeys",
    "check_prefix",
    "cluster_kind",
    "fetch_many",
    "keys_under",
    "namespace",
    "one_command",
    "one_slot",
    "unlink_under",
    "what_clear_deletes",
]

_SEPARATOR = ":"  # the boundary given to a prefix that has none
TRACKING_SUFFIX = ":__tracked__"
"""The end of a function's tracking set's name, after ``<prefix>{<function>}``."""
_LOCK_PREFIX = "__lock__:"
_BALANCED_BRACES = re.compile(r"[^{}]*(?:\{[^{}]*\}[^{}]*)*")
_SCAN_COUNT = 500  # keys asked of each SCAN reply
_UNLINK_BATCH = 500  # keys deleted per round trip


class RedisKeys(Backend):
    """Base of the Redis backends: the full names of their keys, from ``key_prefix``.

    The subclass sets ``_prefix``: a string it passed through :func:`namespace`, or a
    callable returning one, as cachelib allows.
    """

    _prefix: str | Callable[[], str] = ""

    @property
    def key_prefix(self) -> str:
        """The prefix of every key, ending at a boundary (a callable prefix is called)."""
        prefix = self._prefix
        if isinstance(prefix, str):
            return prefix
        return namespace(prefix())

    def _key(self, key: str) -> str:
        prefix = self._prefix
        try:
            return (prefix if prefix.__class__ is str else self.key_prefix) + key
        except TypeError:
            raise key_type_error(key) from None

    def _tracking_key(self, group: str) -> str:
        return f"{self.key_prefix}{{{group}}}{TRACKING_SUFFIX}"

    def _lock_key(self, key: str) -> str:
        try:
            return self.key_prefix + _LOCK_PREFIX + key
        except TypeError:
            raise key_type_error(key) from None


class PrefixKeys:
    """The keys under a prefix, by kind: entries, tracking sets (their groups), locks.

    Args:
        prefix: The key prefix; :meth:`add` each name found under it.
    """

    def __init__(self, prefix: str) -> None:
        self.entries = 0
        self.locks = 0
        self.groups: list[str] = []
        encoded = prefix.encode()
        self._lock = encoded + _LOCK_PREFIX.encode()
        self._head, self._tail = encoded + b"{", b"}" + TRACKING_SUFFIX.encode()

    def add(self, name: bytes) -> None:
        """Count the key ``name``: as a tracking set, a lock or an entry."""
        if name.startswith(self._head) and name.endswith(self._tail):
            self.groups.append(name[len(self._head) : -len(self._tail)].decode(errors="replace"))
        elif name.startswith(self._lock):
            self.locks += 1
        else:
            self.entries += 1


def check_prefix(prefix: str) -> None:
    """Check that braces in ``prefix`` are balanced (they mark a Cluster hash tag).

    Raises:
        ValueError: A brace is unmatched; the message says how to write a tag.
    """
    if not _BALANCED_BRACES.fullmatch(prefix):
        raise ValueError(
            f"key_prefix {prefix!r} has an unmatched brace; braces in a Redis key mark its"
            " Cluster hash tag: remove them (a tagged prefix would also pin every key to one"
            " Cluster slot; each decorated function's keys carry their own tag)"
        )


def namespace(prefix: str) -> str:
    """Return ``prefix`` as the keys use it: checked, and ending at a boundary.

    ``""`` and a prefix ending with a separator (not a letter or a digit) are returned as
    they are; any other gets ``:``.

    Raises:
        ValueError: A brace is unmatched (see :func:`check_prefix`).
    """
    check_prefix(prefix)
    return prefix + _SEPARATOR if prefix[-1:].isalnum() else prefix


def keys_under(r: RedisLike, prefix: str) -> Iterator[bytes]:
    """Yield the name of every key under ``prefix`` (``SCAN`` in batches, never ``KEYS``)."""
    pattern = _escape_glob(prefix) + "*"
    yield from r.scan_iter(match=pattern, count=_SCAN_COUNT)


_KINDS: dict[type, str | None] = {}


def cluster_kind(r: object) -> str | None:
    """``"sync"`` or ``"async"`` for a redis-py Cluster client, ``None`` for any other.

    Found once per client type: ``isinstance`` against redis-py's Cluster classes, whose
    metaclass is ``typing``'s protocol one, costs about 0.5 us a check, and a tracked
    write asked three times.
    """
    kind = type(r)
    try:
        return _KINDS[kind]
    except KeyError:
        found = (
            "async"
            if isinstance(r, AsyncRedisCluster)
            else "sync"
            if isinstance(r, RedisCluster)
            else None
        )
        _KINDS[kind] = found
        return found


def one_slot(r: RedisLike | AsyncRedisCluster, *names: str) -> bool:
    """Whether ``names`` can share one transaction.

    Always on one server; on a Cluster, if they hash to one slot (a decorated function's
    keys and its tracking set always do). Never on redis-py's asyncio Cluster client, whose
    transactions (8.1) run their commands on a private event loop in a thread of their own,
    with connections that then fail on the caller's loop: there a tracked write is a
    pipeline of its commands, sent in one round trip to the slot's node and run in order.
    """
    kind = cluster_kind(r)
    if kind is None:
        return True
    if kind == "async":
        return False
    return len({key_slot(name.encode("utf-8", "surrogatepass")) for name in names}) == 1


def one_command(r: RedisLike | AsyncRedisCluster, *names: str) -> bool:
    """Whether one command (a script) may touch ``names``: on one server, or in one slot.

    Unlike :func:`one_slot`, true on redis-py's asyncio Cluster client too: a single
    command is routed to its slot's node, with no transaction involved.
    """
    if cluster_kind(r) is None:
        return True
    return len({key_slot(name.encode("utf-8", "surrogatepass")) for name in names}) == 1


def fetch_many(r: RedisLike, names: list[str]) -> list[Any]:
    """The values of ``names``: one ``MGET``, or on a Cluster (slots apart) one pipeline."""
    if not isinstance(r, RedisCluster):
        return list(r.mget(names))
    pipe = r.pipeline(transaction=False)  # type: ignore[no-untyped-call]
    for name in names:
        pipe.get(name)
    return list(pipe.execute())


def what_clear_deletes(prefix: str, where: str) -> str:
    """What ``clear()`` deletes with ``prefix`` on the server ``where``, in words."""
    if prefix:
        return f"every key under the prefix {prefix!r} in {where}"
    return f"EVERY key of {where} (the key prefix is empty)"


def unlink_under(r: RedisLike, prefix: str) -> None:
    """Delete every key under ``prefix``, found with ``SCAN``, ``UNLINK`` in batches."""
    batch: list[bytes] = []
    for name in keys_under(r, prefix):
        batch.append(name)
        if len(batch) >= _UNLINK_BATCH:
            _unlink_each(r, batch)
            batch = []
    _unlink_each(r, batch)


def _unlink_each(r: RedisLike, names: list[bytes]) -> None:
    if names:
        pipe = r.pipeline(transaction=False)
        for name in names:  # one key per command: keys of a batch may live in other slots
            pipe.unlink(name)
        pipe.execute()


def _escape_glob(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
