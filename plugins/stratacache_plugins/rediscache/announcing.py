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
    origin_of,
    queue_invalidation,
)
from stratacache_plugins.rediscache.listener import Subscription, subscribe

if TYPE_CHECKING:
    from stratacache.coherence import InvalidationReceiver
    from stratacache_plugins.rediscache.protocol import RedisLike

__all__ = ["Announcing"]


def _first(replies: Any) -> Any:
    """The first of a pipeline's ``replies``, or an awaitable of it (asyncio pipelines)."""
    if not inspect.isawaitable(replies):
        return replies[0]

    async def first() -> Any:
        return (await replies)[0]

    return first()


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

    def _setup_invalidation(self, mode: str, *, cluster: bool) -> None:
        """Check ``mode`` (``CACHE_INVALIDATION``) at construction."""
        if mode not in INVALIDATION_MODES:
            text = "must be 'auto', 'on' or 'off' (CACHE_INVALIDATION)"
            raise OptionsError.refusing([OptionProblem("invalidation", mode, text)])
        if mode == "on" and cluster:
            text = (
                "the invalidation channel is not available on a Redis Cluster yet; set"
                " CACHE_INVALIDATION=auto (off on a Cluster) or off, or keep the local tier's"
                " timeout short"
            )
            raise OptionsError.refusing([OptionProblem("invalidation", mode, text)])
        self._invalidation = "off" if cluster else mode
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
        self._subscription = subscribe(
            self, self._channel, self._serial, receiver, on_refused=self._go_quiet
        )

    def _go_quiet(self) -> None:
        self._channel = None

    def close(self) -> None:
        """Stop listening, then let go of the pool."""
        self.attach_invalidation(None)
        self._channel = None
        super().close()  # type: ignore[misc]

    # -- what the writes call -------------------------------------------------------------

    def _queue_keys(self, pipe: Any, keys: Sequence[str], group: str | None = None) -> None:
        """Queue the invalidation of ``keys`` on ``pipe``, when announcing."""
        channel = self._channel
        if channel is not None and keys:
            queue_invalidation(pipe, channel, encode(origin_of(self._serial), "k", group, keys))

    def _queue_tags(self, pipe: Any, tags: Sequence[str]) -> None:
        """Queue on ``pipe`` that the entries carrying ``tags`` went, when announcing."""
        channel = self._channel
        if channel is not None and tags:
            queue_invalidation(pipe, channel, encode(origin_of(self._serial), "t", None, tags))

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
        pipe = r.pipeline(transaction=False)
        command(pipe)
        self._queue_keys(pipe, keys, group)
        return _first(pipe.execute())

    def _publish_keys(self, r: RedisLike, keys: Sequence[str], group: str | None = None) -> None:
        """Publish the invalidation of ``keys`` on its own (after a multi-step change)."""
        self._publish(r, encode(origin_of(self._serial), "k", group, keys))

    def _publish_group(self, r: RedisLike, group: str) -> None:
        """Publish that every entry of ``group`` went (after ``clear_tracked``)."""
        self._publish(r, encode(origin_of(self._serial), "g", group))

    def _publish_all(self, r: RedisLike) -> None:
        """Publish that every entry went (after ``clear()``)."""
        self._publish(r, encode(origin_of(self._serial), "a"))

    def _publish(self, r: RedisLike, message: bytes) -> None:
        channel = self._channel
        if channel is not None:
            r.publish(channel, message)

    def _channel_name(self) -> str:
        # Pub/sub ignores databases: the database number is part of the name.
        client: Any = self.client  # type: ignore[attr-defined]
        kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
        prefix = getattr(self, "_prefix", "")
        return f"{CHANNEL_PREFIX}{kwargs.get('db', 0)}:{prefix if isinstance(prefix, str) else ''}"
