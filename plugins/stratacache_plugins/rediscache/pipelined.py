"""A few commands in one round trip on one pooled connection, without redis-py's Pipeline.

redis-py's ``Pipeline`` queues, packs and parses through several layers: with redis-py
8.1, a pipeline of ``GET`` and ``PTTL`` costs this process about twice a lone ``GET``,
when the socket work is the same (one ``sendto``, one reply read). :func:`send_together`
packs the commands once, sends them in one write and reads the replies in order, on a
connection of the client's own pool. It is for the clients stratacache builds for one
server or a Sentinel master, which make one attempt (no retry to honour); a Cluster, an
asyncio client or a client passed in by the user keep redis-py's pipeline.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import ResponseError

__all__ = ["send_together"]


def send_together(client: redis.Redis, *commands: tuple[Any, ...]) -> list[Any]:
    """Send ``commands`` in one write on one connection of ``client``; return their replies.

    Every reply is read before an error reply raises (the first one), so the connection
    stays in step with the server; a connection that fails or times out is closed before
    it goes back to the pool (redis-py's connections close themselves on those errors).
    The replies are raw, as redis-py's parser gives them: no response callback applies.

    Raises:
        redis.exceptions.RedisError: The connection failed, or a command's error reply.
    """
    pool = client.connection_pool
    connection: Any = pool.get_connection()  # redis-py leaves its packing untyped
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        error: ResponseError | None = None
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except ResponseError as exc:  # the connection is in step: read the rest
                error = error or exc
                replies.append(exc)
        if error is not None:
            raise error
        return replies
    finally:
        pool.release(connection)
