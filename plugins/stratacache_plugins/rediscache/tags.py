"""Tags on Redis: a sorted set per function and tag, written in the entry's transaction.

An entry of the function ``f`` carrying the tag ``user:42`` is a member of
``<prefix>{f}:__tag__:user:42``, a sorted set in ``f``'s slot scored by the entry's expiry
(the :data:`~stratacache_plugins.rediscache.scripts.TRACK` script of the tracking sets: it
drops expired members and lives as long as its longest-lived member, so a tag set never
grows past the live entries carrying it). It is written in the same ``MULTI`` as the entry
and its tracking, on a Cluster too, since all three share the function's hash tag.

The functions that ever wrote a tagged entry are members of ``<prefix>__tagged__`` (a plain
set: one member per function), so an invalidation finds every function's tag set, whichever
process wrote it:

* on one server, ``invalidate_tag`` is one round trip: :data:`UNTAG_ALL` reads the set of
  tagged functions and deletes, for each, the entries of its tag set, their members of the
  function's tracking set, and the tag set (the script names keys it was not given, which a
  single server allows);
* on a Cluster, the functions' sets live in different slots: one ``SMEMBERS``, then one
  :data:`UNTAG` per tagged function, each in that function's slot: 1 + F round trips, for F
  functions that ever wrote a tagged entry (whatever their tags).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.cluster import RedisCluster

from stratacache import Timeout
from stratacache_plugins.rediscache.client import RedisClient
from stratacache_plugins.rediscache.naming import TRACKING_SUFFIX, RedisKeys, one_slot
from stratacache_plugins.rediscache.protocol import RedisLike
from stratacache_plugins.rediscache.tracking import queue_tracking

__all__ = [
    "UNTAG",
    "UNTAG_ALL",
    "RedisTags",
    "Tagging",
    "invalidate_tag",
    "registry_key",
    "tag_key",
]

_TAG_INFIX = ":__tag__:"

# KEYS[1]: a function's tag set, KEYS[2]: its tracking set. Deletes the members' entries,
# their tracking, and the tag set; returns how many entries went.
UNTAG = """
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local removed = 0
for _, member in ipairs(members) do
  removed = removed + redis.call('DEL', member)
  redis.call('ZREM', KEYS[2], member)
end
redis.call('DEL', KEYS[1])
return removed
"""

# KEYS[1]: the set of tagged functions. ARGV[1]: the prefix, ARGV[2]: the tag. UNTAG for
# every tagged function, in one script (one server only: it builds the names itself).
UNTAG_ALL = f"""
local removed = 0
for _, group in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local base = ARGV[1] .. '{{' .. group .. '}}'
  local tagged = base .. '{_TAG_INFIX}' .. ARGV[2]
  local tracking = base .. '{TRACKING_SUFFIX}'
  for _, member in ipairs(redis.call('ZRANGE', tagged, 0, -1)) do
    removed = removed + redis.call('DEL', member)
    redis.call('ZREM', tracking, member)
  end
  redis.call('DEL', tagged)
end
return removed
"""


def tag_key(prefix: str, group: str, tag: str) -> str:
    """The name of the set of ``group``'s entries carrying ``tag`` (in ``group``'s slot)."""
    return f"{prefix}{{{group}}}{_TAG_INFIX}{tag}"


def registry_key(prefix: str) -> str:
    """The name of the set of functions that wrote tagged entries."""
    return f"{prefix}__tagged__"


class Tagging:
    """The tag commands of one tracked write of the entry ``full`` (none without tags).

    Args:
        prefix: The backend's key prefix.
        full: The entry's full name.
        group: The function (``None``: an untracked write, which carries no tags).
        tags: The entry's tags.
        ms: Its lifetime in milliseconds (0: forever; < 0: a delete, which tags nothing).
    """

    def __init__(
        self, prefix: str, full: str, group: str | None, tags: tuple[str, ...], ms: int
    ) -> None:
        self.prefix, self.full, self.ms = prefix, full, ms
        self.group = group if tags and ms >= 0 else None
        names = [] if self.group is None else [tag_key(prefix, self.group, t) for t in tags]
        self.names = names
        """The tag sets written, all in the function's slot."""

    def queue(self, r: RedisLike, pipe: Any) -> None:
        """Queue the entry's membership in each of its tag sets (scored by its expiry).

        The function joins the set of tagged functions in the same ``MULTI`` on one server,
        and in the pipeline of the asyncio Cluster client (which sends each command to its
        slot's node, in order); with the sync Cluster client, whose transaction holds one
        slot while that set lives in a slot of its own, in a round trip sent now, before
        the write.
        """
        if self.group is None:
            return
        if isinstance(r, RedisCluster):
            r.sadd(registry_key(self.prefix), self.group)
        else:
            pipe.sadd(registry_key(self.prefix), self.group)
        for name in self.names:
            queue_tracking(pipe, name, self.full, self.ms)


def invalidate_tag(
    r: RedisLike, prefix: str, tag: str, also: Callable[[Any], None] | None = None
) -> int:
    """Delete every entry carrying ``tag`` (see the module docstring); return how many.

    ``also`` queues more commands after the deletion (the invalidation message): in its
    round trip on one server, in one of their own after every function's on a Cluster.
    """
    registry, client = registry_key(prefix), cast(Any, r)
    if not isinstance(r, RedisCluster):
        if also is None:
            return int(client.eval(UNTAG_ALL, 1, registry, prefix, tag))
        pipe = client.pipeline(transaction=False)
        pipe.eval(UNTAG_ALL, 1, registry, prefix, tag)
        also(pipe)
        return int(pipe.execute()[0])
    removed = 0
    for member in client.smembers(registry):
        group = member.decode("utf-8", "surrogatepass")
        names = (tag_key(prefix, group, tag), f"{prefix}{{{group}}}{TRACKING_SUFFIX}")
        removed += int(client.execute_command("EVAL", UNTAG, 2, *names))
    if also is not None:  # after every function's deletion, in a round trip of its own
        pipe = client.pipeline(transaction=False)
        also(pipe)
        pipe.execute()
    return removed


class RedisTags(RedisClient, RedisKeys):
    """The tag operations of the Redis backends (see the module docstring)."""

    if TYPE_CHECKING:  # RedisCache's, declared for the type checker only

        def _storing(
            self,
            key: str,
            value: Any,
            timeout: Timeout,
            group: str | None,
            tags: tuple[str, ...] = (),
        ) -> tuple[str, Callable[[RedisLike], Any], int]: ...
        def _overridden(self, *names: str) -> bool: ...
        def _milliseconds(self, timeout: Timeout) -> int: ...
        def _queue_tags(self, pipe: Any, tags: Sequence[str]) -> None: ...

    def set_tagged(
        self,
        key: str,
        value: Any,
        timeout: Timeout = None,
        group: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """Store ``value``, track ``key`` in ``group`` and in its tag sets, in one round trip.

        A subclass that overrides ``set`` or ``set_tracked`` sees every write: the value
        goes through its ``set_tracked``, and the tag sets follow in a second round trip.
        Without a group (the decorator always gives one), so does a write, in the sets of
        the group ``""``.
        """
        if not tags:
            return self.set_tracked(key, value, timeout, group)
        if group is not None and not self._overridden("set", "set_tracked"):
            operation, action, payload = self._storing(key, value, timeout, group, tags)
            return bool(self._run(operation, action, False, payload=payload))
        stored = bool(self.set_tracked(key, value, timeout, group))
        if stored:
            ms = self._milliseconds(timeout)
            tagging = Tagging(self.key_prefix, self._key(key), group or "", tags, ms)

            def tag(r: RedisLike) -> None:
                pipe = r.pipeline(transaction=one_slot(r, *tagging.names))
                tagging.queue(r, pipe)
                pipe.execute()

            self._run("tag", tag, None)
        return stored

    def invalidate_tag(self, tag: str) -> int:
        """Delete every entry carrying ``tag``; return how many went.

        One round trip on one server, 1 + F on a Cluster (F: the functions that wrote
        tagged entries; see the module docstring). The tag's invalidation message (see
        :mod:`.invalidation`) is in the same round trip on one server.
        """
        prefix = self.key_prefix

        def untag(r: RedisLike) -> int:
            return invalidate_tag(r, prefix, tag, lambda pipe: self._queue_tags(pipe, (tag,)))

        return int(self._run("invalidate_tag", untag, 0))
