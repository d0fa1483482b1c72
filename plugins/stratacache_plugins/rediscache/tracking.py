"""The tracking sets: each function's keys in a sorted set scored by their expiry.

A write queues :data:`~stratacache_plugins.rediscache.scripts.TRACK`, which scores the key
with the server's clock (so hosts whose clocks disagree agree on the scores), drops the
members that expired and keeps the set alive as long as its longest-lived member, so
``f.clear_cache()`` deletes exactly the function's keys without a scan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from stratacache_plugins.rediscache.naming import one_slot
from stratacache_plugins.rediscache.protocol import RedisLike
from stratacache_plugins.rediscache.scripts import TRACK

__all__ = ["delete_tracked", "delete_untracking", "queue_tracking"]

_BATCH = 500  # members deleted per round trip


def queue_tracking(pipe: Any, tracking: str, full: str, ms: int) -> None:
    """Queue on ``pipe`` the tracking of the key ``full``, living ``ms`` (0 = forever).

    The script scores it on the server's clock, whatever this host's clock says.
    """
    # EVAL by name: redis-py's ClusterPipeline has no eval(), and routes this by its key.
    pipe.execute_command("EVAL", TRACK, 1, tracking, full, ms)


def delete_untracking(
    r: RedisLike, full: str, tracking: str, also: Callable[[Any], None] | None = None
) -> Any:
    """Delete the key ``full`` and its member of the set ``tracking``, in one transaction.

    ``also`` queues more commands on the transaction after them (the invalidation).
    Returns the replies (awaitable on an asyncio client): the first counts the key deleted.
    """
    pipe = r.pipeline(transaction=one_slot(r, full, tracking))
    pipe.delete(full)
    pipe.zrem(tracking, full)
    if also is not None:
        also(pipe)
    return pipe.execute()


def delete_tracked(r: RedisLike, tracking: str) -> int:
    """Delete the keys of the set ``tracking`` in batches, then the set; return how many."""
    removed = 0
    while True:
        members = r.zrange(tracking, 0, _BATCH - 1)
        if not members:
            break
        names = [tracking, *(cast(bytes, m).decode("utf-8", "surrogatepass") for m in members)]
        pipe = r.pipeline(transaction=one_slot(r, *names))
        for member in members:
            pipe.delete(cast(bytes, member))
        pipe.zrem(tracking, *members)
        results = pipe.execute()
        removed += sum(int(n) for n in results[:-1])
    return removed  # the emptied set is gone: Redis deletes empty sorted sets
