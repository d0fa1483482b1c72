"""The listener: one pub/sub connection and one daemon thread per process and server.

On a Cluster, one thread per process and Cluster, with a connection per master that owns
a wanted channel's slot (:mod:`.sharded`), each channel in the slot it names.

Every stack of the process whose Redis tier announces (see :mod:`.invalidation`) subscribes
through :func:`subscribe`; the listener serves sync and async code alike, since the tiers it
drops from are in this process. It:

* tells a receiver it is ready (``channel_ready``, which flushes) once Redis confirmed its
  channel, and applies each message to the receivers of its channel but the sender's;
* sends a ``PING`` when the connection was quiet for :data:`HEALTH_INTERVAL` and counts the
  channel lost if nothing answers within the read timeout, so a frozen server (SIGSTOP) is
  found within ``HEALTH_INTERVAL`` + ``CACHE_REDIS_READ_TIMEOUT``; a closed connection (a
  restart, ``kill -9``, ``CLIENT KILL``) at once;
* behind Sentinel, asks the sentinels every :data:`MASTER_CHECK` seconds which server is
  master, and counts the channel lost when it is not the one subscribed to (a failover
  that left the old master up, now a replica: what was published on the new master
  before the old one followed it never reached this connection);
* on a loss, tells every receiver (which flushes), then reconnects backing off from
  :data:`MIN_BACKOFF` to :data:`MAX_BACKOFF`;
* stops when its last subscription goes (the stack closed), and at exit (a daemon thread);
* in a forked child, starts again at once for the subscriptions the child inherited.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError, RedisClusterException, RedisError

from stratacache_plugins.rediscache.connection import master_moved, subscriber_of
from stratacache_plugins.rediscache.invalidation import apply, decode, origin_of
from stratacache_plugins.rediscache.sharded import ShardedPubSub, channel_text
from stratacache_plugins.rediscache.subscription import Subscription

if TYPE_CHECKING:
    import redis

    from stratacache.coherence import InvalidationReceiver

__all__ = [
    "FIRST_WAIT",
    "HEALTH_INTERVAL",
    "MASTER_CHECK",
    "MAX_BACKOFF",
    "MIN_BACKOFF",
    "Listener",
    "Subscription",
    "subscribe",
]

logger = logging.getLogger(__package__)

HEALTH_INTERVAL = 0.5
"""Seconds of silence on the pub/sub connection before the listener checks it with a PING."""
MASTER_CHECK = 1.0
"""Seconds between two checks that the server subscribed on is master still: a question to
the sentinels behind Sentinel, ``CLUSTER SLOTS`` on a Cluster."""
MIN_BACKOFF = 0.05
"""Seconds before the first reconnection attempt after a loss."""
MAX_BACKOFF = 1.0
"""The longest wait between two reconnection attempts."""
FIRST_WAIT = 0.25
"""The longest wait of a new subscription for its channel, when the stack is configured."""
_POLL = 0.1  # seconds a read waits: how soon the thread sees a stop or a new subscription


class Listener:
    """The pub/sub connection and thread of one server, in this process."""

    def __init__(
        self, key: Any, build: Callable[[], redis.Redis | RedisCluster], read_timeout: float
    ) -> None:
        self.key = key
        self._build = build
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._by_channel: dict[str, tuple[Subscription, ...]] = {}
        self._version = 0  # counts the changes of _by_channel, for _listen to follow
        self._fresh: list[Subscription] = []  # added, not told ready yet
        self._confirmed: frozenset[str] = frozenset()  # the channels Redis confirmed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        """Whether the listener is subscribed now."""

    # -- subscriptions --------------------------------------------------------------------

    def add(self, subscription: Subscription) -> None:
        """Start applying messages of ``subscription.channel`` to its receiver."""
        with self._lock:
            self._subscriptions.append(subscription)
            self._reindex()
            ready = self.connected and subscription.channels <= self._confirmed
            if not ready:
                self._fresh.append(subscription)
            if self._thread is None:
                self._start()
        if ready:  # a loss from now on tells it, as every other subscription
            subscription.tell_ready()

    def watch(self, subscription: Subscription, channel: str, group: str) -> None:
        """Add ``channel`` (of ``group``) to ``subscription``; confirmed, it drops the group.

        (What was cached before may have missed a change.) While connected, wait for it
        (:data:`FIRST_WAIT` at most): a function decorated now has nothing cached to drop.
        """
        with self._lock:
            if channel in subscription.groups or subscription not in self._subscriptions:
                return
            subscription.groups[channel] = group
            confirmed = None
            if subscription not in self._fresh:
                confirmed = subscription.pending[channel] = threading.Event()
            self._reindex()
        if confirmed is not None and self.connected:
            confirmed.wait(min(self._read_timeout, FIRST_WAIT))

    def remove(self, subscription: Subscription) -> None:
        """Stop it; stop the thread after the last one."""
        with self._lock:
            if subscription not in self._subscriptions:
                return
            self._subscriptions.remove(subscription)
            if subscription in self._fresh:
                self._fresh.remove(subscription)
            self._reindex()
            last = not self._subscriptions
        subscription.receiver.state = "off"
        if last:
            self.stop()

    def _reindex(self) -> None:
        by_channel: dict[str, list[Subscription]] = {}
        for sub in self._subscriptions:
            for channel in sub.channels:
                by_channel.setdefault(channel, []).append(sub)
        self._by_channel = {c: tuple(s) for c, s in by_channel.items()}
        self._version += 1

    # -- the thread -----------------------------------------------------------------------

    def _start(self) -> None:
        self._stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(self._stop,), name="stratacache-invalidation", daemon=True
        )
        self._thread = thread
        thread.start()

    def stop(self, wait: float = 2.0) -> None:
        """Stop the thread and close its connection, waiting at most ``wait`` seconds."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        with _registry_lock:
            if _listeners.get(self.key) is self:
                del _listeners[self.key]
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def _run(self, stop: threading.Event) -> None:
        backoff = MIN_BACKOFF
        while not stop.is_set():
            try:
                self._serve(stop)
                backoff = MIN_BACKOFF
            except NoPermissionError as exc:  # an ACL user without the channel
                self._refuse(exc)
            except (RedisError, RedisClusterException, OSError) as exc:
                if stop.is_set():
                    break
                if self._lost(exc):  # it was subscribed: a new outage, a new back-off
                    backoff = MIN_BACKOFF
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # a bug must not end coherence silently: flush and retry
                logger.exception("the invalidation listener failed")
                self._lost(None)
                stop.wait(MAX_BACKOFF)

    def _refuse(self, exc: NoPermissionError) -> None:
        """Redis refused to subscribe: the waiting subscriptions end, their backends go quiet.

        Their writes would fail on the ``PUBLISH`` too; without the channel, their local
        tiers are what they were before coherence: copies that live their timeout.
        """
        with self._lock:
            refused, self._fresh = self._fresh, []
        for sub in refused:
            logger.warning(
                "Redis refused the invalidation channel %s (%s): the local tiers above Redis"
                " are not kept coherent. Grant the ACL user the channel (ACL SETUSER <user>"
                " &__stratacache__:*), or set CACHE_INVALIDATION=off",
                sub.channel,
                exc,
            )
            sub.refused()
            self.remove(sub)
            sub.ready.set()

    def _lost(self, exc: BaseException | None) -> bool:
        """Tell every receiver the channel is lost; return whether it was subscribed."""
        was, self.connected = self.connected, False
        self._confirmed = frozenset()
        with self._lock:  # every subscription waits for its channels' confirmation again
            self._fresh = list(self._subscriptions)
            for sub in self._subscriptions:
                for event in sub.pending.values():
                    event.set()
                sub.pending.clear()  # its flush once ready covers its functions
        for sub in list(self._subscriptions):
            sub.receiver.channel_lost()
        if was:
            logger.warning(
                "the invalidation channel is lost (%s); the local tiers above Redis are"
                " flushed, and serve only what they cache until it is back",
                exc,
            )
        return was

    def _serve(self, stop: threading.Event) -> None:
        client = self._build()
        if isinstance(client, RedisCluster):
            pubsub: Any = ShardedPubSub(client, self._read_timeout, HEALTH_INTERVAL, MASTER_CHECK)
        else:
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            self._listen(pubsub, stop, lambda: master_moved(client, pubsub.connection))
        finally:
            try:
                pubsub.close()
            finally:
                client.close()

    def _listen(self, pubsub: Any, stop: threading.Event, moved: Callable[[], str | None]) -> None:
        subscribed: set[str] = set()  # confirmed by Redis
        asked: set[str] = set()
        quiet_since = checked_at = time.monotonic()
        pinged_at: float | None = None
        followed = -1  # the _version _follow saw: it runs again only after a change
        while not stop.is_set():
            if followed != self._version:
                followed = self._version
                self._follow(pubsub, asked, subscribed)
            self._tell_ready(subscribed)
            message = pubsub.get_message(timeout=_POLL)
            now = time.monotonic()
            if now - checked_at >= MASTER_CHECK and self.connected:
                checked_at = now
                if (why := moved()) is not None:
                    raise RedisError(why)
            if message is None:
                if pinged_at is not None:
                    if now - pinged_at > self._read_timeout:
                        raise RedisError(f"no answer to a PING in {self._read_timeout:g}s")
                elif now - quiet_since >= HEALTH_INTERVAL and asked:
                    pubsub.ping()
                    pinged_at = now
                continue
            quiet_since, pinged_at = now, None
            kind = message["type"]
            if kind == "message":
                self._dispatch(channel_text(message["channel"]), message["data"])
            elif kind == "subscribe":
                subscribed.add(channel_text(message["channel"]))
                self._confirmed = frozenset(subscribed)
                if not self.connected and subscribed >= asked:
                    self.connected = True
                    logger.info("the invalidation channel is subscribed")

    def _follow(self, pubsub: Any, asked: set[str], subscribed: set[str]) -> None:
        """Subscribe to the channels wanted now and not asked for yet; leave the others."""
        with self._lock:  # add() reads these: a channel that leaves is unconfirmed at once
            wanted = set(self._by_channel)
            gone = asked - wanted
            if gone:
                asked -= gone
                subscribed -= gone
                self._confirmed = frozenset(subscribed)
        new = wanted - asked
        if new:
            pubsub.subscribe(*sorted(new))
            asked |= new
        if gone:
            pubsub.unsubscribe(*sorted(gone))

    def _tell_ready(self, subscribed: set[str]) -> None:
        """Tell the receivers whose channels Redis confirmed (each once per subscription).

        A function's channel added to a subscription already told drops that function's
        entries once confirmed.
        """
        if not self._fresh and not any(s.pending for s in self._subscriptions):
            return
        with self._lock:
            ready = [s for s in self._fresh if s.channels <= subscribed]
            self._fresh = [s for s in self._fresh if not s.channels <= subscribed]
            confirmed = [
                (s, c, s.pending.pop(c))
                for s in self._subscriptions
                if s.pending
                for c in s.pending.keys() & subscribed
            ]
        for sub in ready:
            sub.tell_ready()
        for sub, channel, event in confirmed:
            sub.receiver.drop_group(sub.groups[channel])
            event.set()

    def _dispatch(self, channel: str, data: bytes | str) -> None:
        subscriptions = self._by_channel.get(channel, ())
        if all(sub.sent(data) for sub in subscriptions):
            return  # the commonest message: this process's own write, echoed back
        message = decode(data)
        if message is None:
            return
        for sub in subscriptions:
            if sub.receiver.origin != message.origin:  # its own copy is the fresh one
                apply(message, sub.receiver)


_listeners: dict[Any, Listener] = {}
_registry_lock = threading.Lock()


def subscribe(
    backend: Any,
    channel: str,
    serial: int,
    receiver: InvalidationReceiver,
    on_refused: Callable[[], None] | None = None,
    *,
    groups: dict[str, str] | None = None,
) -> Subscription:
    """Subscribe ``receiver`` to ``channel`` through this process's listener of a server.

    ``groups`` are functions' channels (a Cluster's) and their functions, subscribed too.
    The listener of ``backend``'s server (or Cluster) is started now if there is none.
    """
    key, build, read_timeout = subscriber_of(backend)
    with _registry_lock:
        listener = _listeners.get(key)
        if listener is None:
            listener = _listeners[key] = Listener(key, build, read_timeout)
    subscription = Subscription(listener, channel, serial, receiver)
    subscription.on_refused = on_refused
    subscription.groups = dict(groups or {})
    listener.add(subscription)
    # Bounded: subscribed before first use, the first subscription flushes nothing cached.
    subscription.ready.wait(min(read_timeout, FIRST_WAIT))
    return subscription


def _restart_in_child() -> None:
    """In a forked child: a listener of its own for each inherited one, started at once."""
    global _registry_lock
    _registry_lock = threading.Lock()
    inherited = list(_listeners.values())
    _listeners.clear()
    pid = os.getpid()
    for old in inherited:
        key = (pid, *old.key[1:])
        listener = _listeners[key] = Listener(key, old._build, old._read_timeout)
        for sub in old._subscriptions:
            sub.receiver.state = "connecting"
            sub.listener = listener
            sub.ready = threading.Event()
            sub.pending.clear()
            sub.receiver.origin = origin_of(sub.serial)
            listener._subscriptions.append(sub)
            listener._fresh.append(sub)
        listener._reindex()
        if listener._subscriptions:
            listener._start()


os.register_at_fork(after_in_child=_restart_in_child)


def _stop_all() -> None:
    with _registry_lock:
        listeners = list(_listeners.values())
    for listener in listeners:  # at exit: no thread left blocking the interpreter
        listener.stop(wait=1.0)


atexit.register(_stop_all)
