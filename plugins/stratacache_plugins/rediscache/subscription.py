"""One stack's subscription to the invalidation channel(s) of its Redis tier.

:mod:`.listener` keeps the subscriptions of a server (or a Cluster) and applies each
message to those of its channel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from stratacache_plugins.rediscache.invalidation import origin_of

if TYPE_CHECKING:
    from stratacache.coherence import InvalidationReceiver
    from stratacache_plugins.rediscache.listener import Listener

__all__ = ["Subscription"]


class Subscription:
    """One stack's receiver on its channels; :meth:`close` ends it.

    One channel on a server; on a Cluster, the stack's channel and one per function
    (:meth:`watch`), each in that function's slot.
    """

    def __init__(
        self, listener: Listener, channel: str, serial: int, receiver: InvalidationReceiver
    ) -> None:
        self.listener = listener
        self.channel = channel
        self.groups: dict[str, str] = {}
        """The functions' channels and their functions (a Cluster's)."""
        self.pending: dict[str, threading.Event] = {}
        """Functions' channels added once ready, not confirmed yet; each event is set once
        its confirmation dropped the function's entries."""
        self.serial = serial
        self.receiver = receiver
        self.ready = threading.Event()
        """Set once the receiver was told its channel is subscribed (or it was refused)."""
        self.on_refused: Callable[[], None] | None = None
        """Called when Redis refuses the channel."""
        receiver.origin = origin_of(serial)

    @property
    def channels(self) -> set[str]:
        """Every channel of the subscription."""
        return {self.channel, *self.groups}

    def sent(self, data: bytes | str) -> bool:
        """Whether the message ``data`` is the stack's own, told by its first bytes.

        :func:`~.invalidation.encode` writes the origin first, a JSON string that needs no
        escape, so the echo of the stack's own write is known without decoding the rest.
        """
        origin = self.receiver.origin
        if isinstance(data, bytes):
            return data.startswith(b'["' + origin.encode() + b'",')
        return data.startswith(f'["{origin}",')

    def watch(self, channel: str, group: str) -> None:
        """Listen on ``channel`` too, for the entries of ``group``."""
        self.listener.watch(self, channel, group)

    def refused(self) -> None:
        """Redis refused the channel (ACL): the backend stops announcing on it."""
        self.receiver.state = "off"
        if self.on_refused is not None:
            self.on_refused()

    def tell_ready(self) -> None:
        """The channel is subscribed: the receiver flushes, and trusts its tiers again."""
        self.receiver.channel_ready()
        self.ready.set()

    def close(self) -> None:
        """Stop applying messages to the receiver; the last one stops the listener."""
        self.listener.remove(self)
