"""What a Redis backend adds to announce its changes: :class:`Announcing`, mixed into RedisCache.

The message format and how it is queued: :mod:`.invalidation`; the process's listener that
applies other instances' messages: :mod:`.listener`.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from stratacache.options import OptionProblem, OptionsError
from stratacache_plugins.rediscache.invalidation import (
    CHANNEL_PREFIX,
    INVALIDATION_MODES,
    encode,
    group_channel,
    origin_of,
    queue_invalidation,
)
from stratacache_plugins.rediscache.listener import Subscription, subscribe

if TYPE_CHECKING:
    from stratacache.coherence import InvalidationReceiver
    from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = ["Announcing", "after_reply"]


def _first(replies: Any) -> Any:
    """The first of a pipeline's ``replies``, or an awaitable of it (asyncio pipelines)."""
    if not inspect.isawaitable(replies):
        return replies[0]

    async def first() -> Any:
        return (await replies)[0]

    return first()


def after_reply(reply: Any, after: Callable[[], Any]) -> Any:
    """``reply``, once ``after()`` ran after it; awaited first on an asyncio client."""
    if not inspect.isawaitable(reply):
        after()
        return reply

    async def then() -> Any:
        value = await reply
        done = after()
        if inspect.isawaitable(done):
            await done
        return value

    return then()


_serials = itertools.count(1)


class Announcing:
    """What a Redis backend adds to announce its changes (mixed into ``RedisCache``).

    The stack calls :meth:`attach_invalidation` (see :mod:`stratacache.coherence`). The
    backend's writes call :meth:`_queue_keys` on the pipeline they execute, or run a single
    command through :meth:`_announced`; a tag invalidation queues :meth:`_queue_tags` beside
    its script; clears call :meth:`_publish_group` and :meth:`_publish_all` once they are
    done.
    """

    _invalidation: str = "auto"
    _channel: str | None = None  # set while announcing
    _subscription: Subscription | None = None
    _serial = 0
    _sharded = False  # a Cluster's: SPUBLISH, a channel per function

    def _setup_invalidation(self, mode: str, *, cluster: bool) -> None:
        """Check ``mode`` (``CACHE_INVALIDATION``) at construction."""
        if mode not in INVALIDATION_MODES:
            text = "must be 'auto', 'on' or 'off' (CACHE_INVALIDATION)"
            raise OptionsError.refusing([OptionProblem("invalidation", mode, text)])
        self._invalidation = mode
        self._sharded = cluster
        self._serial = next(_serials)

    # -- what the stack calls -------------------------------------------------------------

    def attach_invalidation(self, receiver: InvalidationReceiver | None) -> None:
        """Announce this backend's changes, and apply others' to ``receiver``.

        ``None`` (no tier above this one, or the stack lets the backend go) stops the
        listening; the backend announces still with ``CACHE_INVALIDATION=on``.
        """
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        mode = self._invalidation
        announcing = mode == "on" or (mode == "auto" and receiver is not None)
        self._channel = self._channel_name() if announcing else None
        if receiver is None:
            return
        if not announcing:
            receiver.state = "off"
            return
        assert self._channel is not None
        groups = {self._group_channel(g): g for g in receiver.groups} if self._sharded else {}
        self._subscription = subscription = subscribe(
            self, self._channel, self._serial, receiver, self._go_quiet, groups=groups
        )
        if self._sharded:
            receiver.on_watch = lambda group: subscription.watch(self._group_channel(group), group)

    def _go_quiet(self) -> None:
        self._channel = None

    def close(self) -> None:
        """Stop listening, then let go of the pool."""
        self.attach_invalidation(None)
        self._channel = None
        super().close()  # type: ignore[misc]

    # -- what the writes call -------------------------------------------------------------

    def _queue_keys(self, pipe: Any, keys: Sequence[str], group: str | None = None) -> None:
        """Queue the invalidation of ``keys`` on ``pipe``, when announcing.

        On a Cluster, on ``group``'s channel, in its slot; keys without a group are not
        queued there (the stack's channel is in a slot of its own): the change calls
        :meth:`_after_keys` once it is done.
        """
        channel = self._channel
        if channel is None or not keys:
            return
        message = encode(origin_of(self._serial), "k", group, keys)
        if not self._sharded:
            queue_invalidation(pipe, channel, message)
        elif group is not None:
            queue_invalidation(pipe, self._group_channel(group), message, sharded=True)

    def _after_keys(self, r: RedisLike, keys: Sequence[str], group: str | None = None) -> Any:
        """After a change of ``keys``: on a Cluster, publish those :meth:`_queue_keys` left.

        Returns an awaitable on an asyncio client, when it publishes.
        """
        if self._sharded and group is None and keys:
            return self._publish_keys(r, keys)
        return None

    def _queue_tags(self, pipe: Any, tags: Sequence[str]) -> None:
        """Queue on ``pipe`` that the entries carrying ``tags`` went, when announcing."""
        channel = self._channel
        if channel is not None and tags:
            message = encode(origin_of(self._serial), "t", None, tags)
            queue_invalidation(pipe, channel, message, sharded=self._sharded)

    def _announcement(
        self, keys: Sequence[str], group: str | None = None
    ) -> tuple[str, bytes] | None:
        """The channel and the message a script ``PUBLISH``-es to announce ``keys``.

        ``None`` when not announcing. For a tracked write's script
        (:data:`.scripts.SET_TRACKED`), where :meth:`_scripted_announcements` is true.
        """
        channel = self._channel
        if channel is None or not keys:
            return None
        return channel, encode(origin_of(self._serial), "k", group, keys)

    def _scripted_announcements(self) -> bool:
        """Whether a script may announce this backend's changes with ``PUBLISH``.

        Not while announcing on a Cluster: the message then goes to the function's sharded
        channel (``SPUBLISH``), which :meth:`_queue_keys` queues beside the change.
        """
        return not (self._sharded and self._channel is not None)

    def _announced(
        self,
        r: RedisLike,
        keys: Sequence[str],
        command: Callable[[Any], Any],
        group: str | None = None,
    ) -> Any:
        """Run ``command`` on ``r``, with the invalidation of ``keys`` in its round trip.

        Returns the command's reply, or on a ``redis.asyncio`` client an awaitable of it.
        """
        if self._channel is None:
            return command(r)
        if self._sharded and group is None:  # the command first, then its message
            return after_reply(command(r), lambda: self._publish_keys(r, keys))
        pipe = r.pipeline(transaction=False)
        command(pipe)
        self._queue_keys(pipe, keys, group)
        return _first(pipe.execute())

    def _publish_keys(self, r: RedisLike, keys: Sequence[str], group: str | None = None) -> Any:
        """Publish the invalidation of ``keys`` on its own (after a multi-step change)."""
        return self._publish(r, encode(origin_of(self._serial), "k", group, keys), group)

    def _publish_group(self, r: RedisLike, group: str) -> None:
        """Publish that every entry of ``group`` went (after ``clear_tracked``)."""
        self._publish(r, encode(origin_of(self._serial), "g", group), group)

    def _publish_all(self, r: RedisLike) -> None:
        """Publish that every entry went (after ``clear()``)."""
        self._publish(r, encode(origin_of(self._serial), "a"))

    def _publish(self, r: RedisLike, message: bytes, group: str | None = None) -> Any:
        """Publish ``message``: on a Cluster, on ``group``'s channel or the stack's.

        Returns an awaitable on an asyncio client.
        """
        channel = self._channel
        if channel is None:
            return None
        if not self._sharded:
            return r.publish(channel, message)
        if group is not None:
            channel = self._group_channel(group)
        client: Any = r
        return client.execute_command("SPUBLISH", channel, message)

    def _group_channel(self, group: str) -> str:
        prefix = getattr(self, "_prefix", "")
        return group_channel(prefix if isinstance(prefix, str) else "", group)

    def _channel_name(self) -> str:
        # Pub/sub ignores databases: the database number is part of the name. A Cluster has
        # database 0 only (and its client connects when built: configuring connects nothing).
        client: Any = None if self._sharded else self.client  # type: ignore[attr-defined]
        kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
        prefix = getattr(self, "_prefix", "")
        return f"{CHANNEL_PREFIX}{kwargs.get('db', 0)}:{prefix if isinstance(prefix, str) else ''}"
