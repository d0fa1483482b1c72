"""Sharded pub/sub on a Redis Cluster, shaped like one pub/sub connection for the listener.

On a Cluster the invalidation channels are sharded (``SPUBLISH``/``SSUBSCRIBE``, Redis 7.0):
a channel lives in the slot its name hashes to, on the master owning that slot, so a change
can announce itself in the transaction that makes it. :class:`ShardedPubSub` keeps one
pub/sub connection per master that owns a wanted channel's slot and reads them all from
the listener's one thread (``select`` over their sockets). It gives the listener
(:mod:`.listener`) what a plain ``PubSub`` gives: ``subscribe``, ``unsubscribe``,
``get_message`` (``smessage`` and ``ssubscribe`` are given as ``message`` and
``subscribe``), ``ping`` and ``close``.

A loss is anything after which it cannot know that it received every message, and raises
:class:`~redis.exceptions.RedisError` (the listener then flushes, and builds it again from
a fresh slot map):

* a connection that closes or fails (a master killed, ``CLIENT KILL``);
* an ``sunsubscribe`` it did not ask for: Redis unsubscribes a slot's channels when the
  node loses the slot (a slot moved away, or a failover made another node its master);
* a node that leaves a ``PING`` unanswered for the read timeout (a frozen master): each
  connection quiet for :data:`~.listener.HEALTH_INTERVAL` is checked on its own;
* a channel whose slot another node owns now, as ``CLUSTER SLOTS`` (asked every
  ``check_every`` seconds) says: redis-server 7.0 unsubscribes nobody when ``CLUSTER
  FAILOVER`` makes its master a replica, and the connection then goes on receiving the
  shard's messages through replication, but what the new master published before its old
  master followed it never came.
"""

from __future__ import annotations

import select
import time
from typing import Any

from redis.cluster import RedisCluster
from redis.exceptions import RedisError

__all__ = ["ShardedPubSub", "channel_text"]

_KINDS = {"smessage": "message", "ssubscribe": "subscribe", "pong": "pong"}


class ShardedPubSub:
    """One pub/sub connection per master of the wanted channels' slots (module docstring).

    Args:
        cluster: A cluster client of the listener's own (its slot map routes the channels).
        read_timeout: Seconds a node may leave a ``PING`` unanswered.
        health_interval: Seconds of silence on a node's connection before it is pinged.
        check_every: Seconds between two checks of the channels' slot owners.
    """

    def __init__(
        self,
        cluster: RedisCluster,
        read_timeout: float,
        health_interval: float,
        check_every: float,
    ) -> None:
        self._cluster = cluster
        self._read_timeout = read_timeout
        self._health_interval = health_interval
        self._check_every = check_every
        self._checked = time.monotonic()
        self._pubsubs: dict[str, Any] = {}  # node name -> its redis-py PubSub
        self._node_of: dict[str, str] = {}  # channel -> node name
        self._heard: dict[str, float] = {}  # node name -> when it last sent anything
        self._pinged: dict[str, float] = {}  # node name -> when an unanswered PING left
        self._leaving: set[str] = set()  # channels unsubscribed on purpose
        self.connection = None
        """No single connection: ``master_moved`` (Sentinel's check) has nothing to do."""

    def subscribe(self, *channels: str) -> None:
        """``SSUBSCRIBE`` each channel on the master owning its slot.

        One command per slot: Redis refuses an ``SSUBSCRIBE`` whose channels are in
        different slots, even on one node.
        """
        by_slot: dict[int, list[str]] = {}
        for channel in channels:
            slot = self._cluster.keyslot(channel)  # type: ignore[no-untyped-call]
            by_slot.setdefault(slot, []).append(channel)
        for slot, names in by_slot.items():
            node = self._cluster.nodes_manager.get_node_from_slot(slot)
            if node.name not in self._pubsubs:
                client = self._cluster.get_redis_connection(node)
                self._pubsubs[node.name] = client.pubsub()  # type: ignore[no-untyped-call]
                self._heard[node.name] = time.monotonic()
            for channel in names:
                self._node_of[channel] = node.name
                self._leaving.discard(channel)
            self._pubsubs[node.name].ssubscribe(*names)

    def unsubscribe(self, *channels: str) -> None:
        """``SUNSUBSCRIBE`` the channels (their confirmations are not a loss)."""
        for channel in channels:
            name = self._node_of.pop(channel, None)
            if name is not None:
                self._leaving.add(channel)
                self._pubsubs[name].sunsubscribe(channel)

    def ping(self) -> None:
        """Nothing: each node's connection is checked on its own (see the module docstring)."""

    def get_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message of any node, waiting at most ``timeout`` seconds; or ``None``."""
        found = self._next()
        if found is not None or not self._pubsubs:
            if found is None:
                time.sleep(timeout)
            return found
        sockets = [s for s in (self._socket(p) for p in self._pubsubs.values()) if s]
        if sockets:
            select.select(sockets, [], [], timeout)
        return self._next()

    def close(self) -> None:
        """Close every node's connection."""
        pubsubs, self._pubsubs = list(self._pubsubs.values()), {}
        for pubsub in pubsubs:
            pubsub.close()

    def _next(self) -> dict[str, Any] | None:
        now = time.monotonic()
        if now - self._checked >= self._check_every and self._node_of:
            self._checked = now
            self._check_owners()
        for name, pubsub in list(self._pubsubs.items()):
            message = pubsub.get_message(timeout=0)
            if message is not None:
                self._heard[name] = now
                self._pinged.pop(name, None)
                found = self._translate(name, message)
                if found is not None:
                    return found
                continue
            pinged = self._pinged.get(name)
            if pinged is not None:
                if now - pinged > self._read_timeout:
                    raise RedisError(
                        f"the cluster node {name} left a PING unanswered {self._read_timeout:g}s"
                    )
            elif now - self._heard[name] >= self._health_interval and pubsub.subscribed:
                pubsub.ping()
                self._pinged[name] = now
        return None

    def _check_owners(self) -> None:
        """Raise if a subscribed channel's slot has another master now (``CLUSTER SLOTS``)."""
        try:
            reply = self._cluster.execute_command(  # type: ignore[no-untyped-call]
                "CLUSTER SLOTS", target_nodes=RedisCluster.RANDOM
            )
        except (RedisError, OSError):  # a failing node is seen on its own connection
            return
        owners = _owners(reply)
        for channel, name in self._node_of.items():
            slot = self._cluster.keyslot(channel)  # type: ignore[no-untyped-call]
            owner = next((n for (first, last), n in owners if first <= slot <= last), name)
            if owner != name:
                raise RedisError(
                    f"the slot of {channel} moved from {name} to {owner} (a resharding or a"
                    " failover)"
                )

    def _translate(self, name: str, message: dict[str, Any]) -> dict[str, Any] | None:
        kind = channel_text(message["type"])
        if kind == "sunsubscribe":
            channel = channel_text(message["channel"])
            if channel in self._leaving:
                self._leaving.discard(channel)
                return None
            raise RedisError(
                f"the cluster node {name} unsubscribed {channel}: its slot moved to another"
                " node (a resharding or a failover)"
            )
        shown = _KINDS.get(kind)
        if shown is None:
            return None
        return {**message, "type": shown}

    @staticmethod
    def _socket(pubsub: Any) -> Any:
        connection = pubsub.connection
        return None if connection is None else getattr(connection, "_sock", None)


def _owners(reply: Any) -> list[tuple[tuple[int, int], str]]:
    """``CLUSTER SLOTS``' ranges and their masters' ``host:port``, as redis-py parsed it."""
    if isinstance(reply, dict):  # {(first, last): {"primary": (host, port), ...}}
        return [
            ((int(r[0]), int(r[1])), f"{channel_text(v['primary'][0])}:{int(v['primary'][1])}")
            for r, v in reply.items()
        ]
    return [  # [[first, last, [host, port, id], replicas...], ...]
        ((int(line[0]), int(line[1])), f"{channel_text(line[2][0])}:{int(line[2][1])}")
        for line in reply
    ]


def channel_text(value: bytes | str) -> str:
    """A channel's name (or a message type), as redis-py gives it: bytes or str."""
    return value.decode() if isinstance(value, bytes) else value
