"""The Lua scripts of the Redis backends.

Each runs atomically on the server; every key one script touches shares the caller's hash
tag, so the scripts also run on Redis Cluster. The tracking scores come from the server's
``TIME``, which a script may read before it writes (effects replication: the default since
Redis 5; stratacache needs 6.0 for ``SET KEEPTTL``).
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "COMMIT_IF_OWNER", "RELEASE", "TRACK"]


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
# KEYS: lock, value, tracking set. ARGV: token, data, ms (0 = no expiry), group flag.
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
if outcome == 1 then redis.call('DEL', KEYS[1]) end
return outcome
"""
)
