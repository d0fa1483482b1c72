"""The invalidation channel of the Redis backends: what a write tells other instances.

Every change a Redis backend makes (a write, a delete, a function's ``clear_cache``, a full
``clear()``) queues one ``PUBLISH`` on a channel of the database and key prefix, in the
**same** pipeline or transaction as the change: the message costs no round trip, and leaves
the server only after the change is done. A group clear and a full clear are one message
each, however many keys they delete. Each message carries its origin, the writing backend's
id in this process (renewed in a forked child): the listener (:mod:`.listener`) does not
apply a stack's own messages to that stack, so a write keeps the fresh copy it just stored.

On a Redis Cluster the channels are sharded (``SPUBLISH``): one per function, in the slot
of the function's keys (:func:`group_channel`), so a function's change announces itself in
its own ``MULTI``; and the stack's, for a full clear, tags and plain keys, announced after
their change (it lives in a slot of its own). The listener follows them with
:mod:`.sharded`.

Why explicit messages rather than Redis's server-assisted client-side caching (``CLIENT
TRACKING ... BCAST``): see the docs page "Coherent local tiers", with the measurements.

:class:`~.announcing.Announcing` is what the backends mix in to send them.

A message is JSON: ``[origin, op, group, keys]``, ``op`` one of ``"k"`` (these keys,
tracked in ``group`` or ``null``), ``"g"`` (every entry of ``group``), ``"t"`` (every entry
carrying one of the tags in ``keys``: ``invalidate_tags``) and ``"a"`` (all).

A tag travels as its name, which each receiver resolves against its own tiers' tag index
(every local copy of a tagged entry is written with its tags, fills included), rather than
as the keys the writer's script deleted: the message stays one short line however many
entries carry the tag, it is queued beside the script in the same round trip (the writer
does not wait for the script's list of keys), and it also reaches a local copy whose Redis
entry already expired or was evicted, which a list of the keys Redis deleted would miss.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from stratacache.coherence import InvalidationReceiver

__all__ = [
    "CHANNEL_PREFIX",
    "INVALIDATION_MODES",
    "Message",
    "apply",
    "decode",
    "encode",
    "group_channel",
    "origin_of",
    "queue_invalidation",
]

CHANNEL_PREFIX = "__stratacache__:invalidate:"
"""The channels' names: this, the database number, ``:`` and the key prefix."""
INVALIDATION_MODES = ("auto", "on", "off")
"""``CACHE_INVALIDATION``'s values: on when a tier above Redis exists, always, never."""

Op = Literal["k", "g", "t", "a"]


class Message(NamedTuple):
    """One decoded invalidation."""

    origin: str
    op: Op
    group: str | None
    keys: Sequence[str]


_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""One encoder for every message: ``json.dumps`` with separators builds one per call."""


def encode(origin: str, op: Op, group: str | None = None, keys: Sequence[str] = ()) -> bytes:
    """Return the bytes of one message (see the module docstring)."""
    return _COMPACT.encode([origin, op, group, list(keys)]).encode()


def decode(data: bytes | str) -> Message | None:
    """Return the message in ``data``, or ``None`` when it is not one of ours."""
    try:
        origin, op, group, keys = json.loads(data)
    except (ValueError, TypeError):
        return None
    if op not in ("k", "g", "t", "a") or not isinstance(keys, list):
        return None
    return Message(str(origin), op, group, keys)


def apply(message: Message, receiver: InvalidationReceiver) -> None:
    """Drop from ``receiver``'s tiers what ``message`` says changed."""
    if message.op == "k":
        receiver.drop_keys(message.keys, message.group)
    elif message.op == "g" and message.group is not None:
        receiver.drop_group(message.group)
    elif message.op == "t":
        receiver.drop_tags(message.keys)
    elif message.op == "a":
        receiver.drop_all()


def group_channel(prefix: str, group: str) -> str:
    """A function's channel on a Cluster: in the slot of the function's keys.

    Its hash tag is the function's, ``{<group>}`` after the key prefix, as in the names of
    the function's entries and tracking set, so ``SPUBLISH`` on it joins their transaction.
    """
    return f"{CHANNEL_PREFIX}{prefix}{{{group}}}"


def queue_invalidation(pipe: Any, channel: str, message: bytes, sharded: bool = False) -> None:
    """Queue ``PUBLISH channel message`` on ``pipe``: any redis-py pipeline, sync or async.

    ``SPUBLISH`` when ``sharded`` (a Cluster's channels). Queueing is synchronous in both
    (``redis.asyncio`` pipelines queue without awaiting), so the message leaves with the
    pipeline's other commands, after them.
    """
    if sharded:
        pipe.execute_command("SPUBLISH", channel, message)
    else:
        pipe.publish(channel, message)


_process = uuid.uuid4().hex[:12]  # this process's part of every origin


def _renew_process_token() -> None:
    global _process
    _process = uuid.uuid4().hex[:12]


os.register_at_fork(after_in_child=_renew_process_token)


def origin_of(serial: int) -> str:
    """The origin of the backend numbered ``serial``, in this process."""
    return f"{_process}:{serial}"
