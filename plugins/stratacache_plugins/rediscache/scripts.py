"""The Lua scripts of the Redis backends.

Each runs atomically on the server; every key one script touches shares the caller's hash
tag, so the scripts also run on Redis Cluster. The tracking scores come from the server's
``TIME``, which a script may read before it writes (effects replication: the default since
Redis 5; stratacache needs 6.0 for ``SET KEEPTTL``).
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from redis.exceptions import NoScriptError

__all__ = ["ACQUIRE", "COMMIT_IF_OWNER", "RELEASE", "SET_TRACKED", "TRACK", "Script"]


# The server's clock in milliseconds: TIME answers seconds and microseconds. Scoring with it
# (never a client's clock, which may be off) keeps the scores comparable across hosts.
_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""


def _track_lua(tracking: str, member: str, ms: str) -> str:
    """Lua that tracks ``member``, living ``ms`` milliseconds (0: forever), in ``tracking``.

    The score is when the entry expires, on the server's clock. Members whose entry expired
    are dropped, and the set lives exactly as long as its longest-lived member (forever if
    one never expires).
    """
    return (
        _NOW_MS
        + f"""
local score = '+inf'
if {ms} > 0 then score = now + {ms} end
redis.call('ZADD', {tracking}, score, {member})
redis.call('ZREMRANGEBYSCORE', {tracking}, '-inf', now)
local top = redis.call('ZRANGE', {tracking}, -1, -1, 'WITHSCORES')
if top[2] == 'inf' or top[2] == '+inf' then
  redis.call('PERSIST', {tracking})
else
  redis.call('PEXPIREAT', {tracking}, top[2])
end
"""
    )


# KEYS[1]: the tracking set. ARGV: member, ms (0 = no expiry).
TRACK = _track_lua("KEYS[1]", "ARGV[1]", "tonumber(ARGV[2])")


class Script:
    """A script sent by its SHA1 (``EVALSHA``), or by its text to a server that lacks it.

    A server that restarted, failed over or flushed its scripts answers ``NOSCRIPT``; the
    call is then sent again as ``EVAL``, which also caches the script there.

    Args:
        text: The Lua source.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def run(self, r: Any, keys: int, *args: Any) -> Any:
        """Run the script on the client ``r`` with its ``keys`` first ``args`` as its keys.

        ``r`` is a client, synchronous or ``redis.asyncio`` (then an awaitable of the reply
        is returned), never a pipeline, whose errors come only when it executes.
        """
        try:
            reply = r.execute_command("EVALSHA", self.sha, keys, *args)
        except NoScriptError:
            return r.execute_command("EVAL", self.text, keys, *args)
        if inspect.isawaitable(reply):
            return self._awaited(reply, r, keys, args)
        return reply

    async def _awaited(self, reply: Any, r: Any, keys: int, args: tuple[Any, ...]) -> Any:
        try:
            return await reply
        except NoScriptError:
            return await r.execute_command("EVAL", self.text, keys, *args)


# A tracked write in one command: stores the entry, tracks it (TRACK), and announces it,
# atomically like the MULTI/SET/EVAL/PUBLISH/EXEC it replaces, with a fraction of its
# client's work (one command to pack and one reply to parse instead of five).
# KEYS[1]: the entry, KEYS[2]: its tracking set. ARGV: data, ms (0 = no expiry), the
# channel to announce it on ('' = none) and the message. Returns 1.
SET_TRACKED = Script(
    """
local ms = tonumber(ARGV[2])
if ms > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ms)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
"""
    + _track_lua("KEYS[2]", "KEYS[1]", "ms")
    + """
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
"""
)


# Deletes the lock only if it still holds the caller's token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Takes the lock if it is free, or if it already holds the caller's token: a request whose
# reply was lost (it timed out, writes were paused) may have taken it, and one token serves
# a caller's whole wait, so the caller recognizes its own lock and does not wait for itself.
# KEYS: lock. ARGV: token, ms. Returns 1 if the caller holds the lock, 0 if another does.
ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Writes the value (and tracks it) if the caller still owns the lock, then releases it. A
# caller whose lock is gone (evicted, or expired) writes only if no value is stored and no
# other caller holds the lock: the first committed value wins, a stale holder never
# overwrites a newer value, and never writes while another computes.
# KEYS: lock, value, tracking set, then the entry's tag sets (tracked like the tracking set).
# ARGV: token, data, ms (0 = no expiry), group flag.
# Returns 1 (stored, the owner), 2 (stored, the lock was gone), 3 (a value is stored: not
# written), 0 (another caller holds the lock: not written).
COMMIT_IF_OWNER = (
    """
local held = redis.call('GET', KEYS[1])
local outcome = 1
if held ~= ARGV[1] then
  if held then return 0 end
  if redis.call('EXISTS', KEYS[2]) == 1 then return 3 end
  outcome = 2
end
local ms = tonumber(ARGV[3])
if ms > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ms)
else
  redis.call('SET', KEYS[2], ARGV[2])
end
if ARGV[4] == '1' then
"""
    + _track_lua("KEYS[3]", "KEYS[2]", "ms")
    + """
end
for i = 4, #KEYS do
"""
    + _track_lua("KEYS[i]", "KEYS[2]", "ms")
    + """
end
if outcome == 1 then redis.call('DEL', KEYS[1]) end
return outcome
"""
)
