"""RedisCache and RedisCacheNoExceptions against real redis-server processes.

Configuration, what each operation costs in commands, key tracking, ``clear()``, errors
when Redis is down, and fork safety. A test that breaks a server starts its own
(``make_redis_server``). Refused, frozen, killed and erroring servers and unreadable entries
are scenarios of the reliability suite (``tests/reliability``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import cachelib
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from stratacache import (
    NO_VALUE,
    CacheError,
    CacheStack,
    DeserializationError,
    cached_for,
)
from stratacache.keys import function_name
from stratacache_plugins import rediscache
from stratacache_plugins.rediscache import (
    RedisCache,
    RedisCacheError,
    RedisCacheNoExceptions,
    connection,
)

from .redis_server import RedisServer

PREFIX = "app_"
LOGGER = rediscache.__name__
FAST = {"CACHE_REDIS_CONNECT_TIMEOUT": 0.2, "CACHE_REDIS_READ_TIMEOUT": 0.5}
# Commands of connection set-up and of the tests' own inspection, not of the cache.
NOISE = frozenset(
    {"hello", "client|setinfo", "client|id", "config|resetstat", "info", "ping", "echo", "monitor"}
)


def redis_stack(
    url: str, cache_type: str = "RedisCacheNoExceptions", **settings: Any
) -> CacheStack:
    """A stack on ``url`` with the ``app_`` prefix and short timeouts."""
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": cache_type,
            "CACHE_REDIS_URL": url,
            "CACHE_KEY_PREFIX": PREFIX,
            **FAST,
            **settings,
        }
    )
    return stack


def data_commands(server: RedisServer) -> dict[str, int]:
    """The commands the server ran since ``reset_stats()``, without connection noise."""
    return {name: n for name, n in server.command_counts().items() if name not in NOISE}


def monitored(server: RedisServer, action: Callable[[], object]) -> list[str]:
    """Run ``action`` and return the commands the server executed meanwhile, in order."""
    marker = "__end_of_monitoring__"
    commands: list[str] = []
    with server.client() as watcher, watcher.monitor() as monitor:
        action()
        with server.client() as other:
            other.echo(marker)
        while marker not in (command := monitor.next_command()["command"]):
            commands.append(command)
    # Connection set-up, and the keep-alive PING of a quiet invalidation listener (another
    # stack's, subscribed on this server): not what the action sent.
    return [
        c
        for c in commands
        if not c.upper().lstrip('"').startswith(("HELLO", "CLIENT SETINFO", "PING"))
    ]


def warnings_from_redis(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING messages the Redis backends logged."""
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


def zsets(client: redis.Redis) -> list[bytes]:
    """The sorted sets of the database: the tracking sets, whatever their names."""
    return [key for key in client.scan_iter(count=1000) if client.type(key) == b"zset"]


@pytest.fixture
def raw(redis_url: str, redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the session's server (emptied by ``redis_url``)."""
    with redis_server.client() as client:
        yield client


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "db_setting", "expected_db"),
    [("/2", 5, 2), ("", 5, 5)],
    ids=["url-names-the-db", "CACHE_REDIS_DB-fills-in"],
)
def test_host_given_as_a_url(
    redis_server: RedisServer, raw: redis.Redis, path: str, db_setting: int, expected_db: int
) -> None:
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_HOST": f"redis://127.0.0.1:{redis_server.port}{path}",
            "CACHE_REDIS_DB": db_setting,
            "CACHE_KEY_PREFIX": PREFIX,
        }
    )
    assert stack.set("k", "v") is True
    with redis_server.client(db=expected_db) as db:
        assert pickle.loads(db.get("app_k")) == "v"
    assert raw.exists("app_k") == 0, "not the default database 0"


def test_no_host_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"host=None: give a host name, a redis:// URL"):
        RedisCache(host=None)  # type: ignore[arg-type]


def test_bare_host_with_port_and_db(redis_server: RedisServer, raw: redis.Redis) -> None:
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCacheNoExceptions",
            "CACHE_REDIS_HOST": "127.0.0.1",
            "CACHE_REDIS_PORT": redis_server.port,
            "CACHE_REDIS_DB": 3,
            "CACHE_KEY_PREFIX": PREFIX,
        }
    )
    assert stack.set("k", "v") is True
    with redis_server.client(db=3) as db3:
        assert pickle.loads(db3.get("app_k")) == "v"
    assert stack.get("k") == "v"
    assert raw.exists("app_k") == 0


PASSWORD = "s3cret-Pa55word"


@pytest.mark.parametrize(
    "given_as", ["password-setting", "url", "host-url", "url-and-password-setting"]
)
def test_password_is_used_and_never_shown(
    make_redis_server: Callable[[], RedisServer], given_as: str
) -> None:
    server = make_redis_server()
    with server.client() as admin:
        admin.config_set("requirepass", PASSWORD)
    connection: dict[str, Any] = {
        "password-setting": {
            "CACHE_REDIS_HOST": "127.0.0.1",
            "CACHE_REDIS_PORT": server.port,
            "CACHE_REDIS_PASSWORD": PASSWORD,
        },
        "url": {"CACHE_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"},
        "host-url": {"CACHE_REDIS_HOST": f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"},
        "url-and-password-setting": {
            "CACHE_REDIS_URL": f"redis://127.0.0.1:{server.port}/0",
            "CACHE_REDIS_PASSWORD": PASSWORD,
        },
    }[given_as]
    stack = CacheStack()
    settings = stack.configure(
        {"CACHE_TYPE": "RedisCache", "CACHE_KEY_PREFIX": PREFIX, **FAST, **connection}
    )
    assert stack.set("k", 1) is True, "the password reached the server"
    layer = stack.shared_cache
    shown = {
        "repr(backend)": repr(layer.cache),
        "repr(layer)": repr(layer),
        "repr(layer.config)": repr(layer.config),
        "repr(stack)": repr(stack),
        "as_mapping()": json.dumps(settings.as_mapping(), default=str),
    }
    server.kill()
    with pytest.raises(RedisCacheError) as failure:
        layer.cache.get("k")
    shown["error"] = str(failure.value)
    assert {where: PASSWORD in text for where, text in shown.items()} == dict.fromkeys(shown, False)
    assert "127.0.0.1" in shown["repr(backend)"]


def test_password_with_url_reserved_characters(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    password = "p@ss/w:rd#1?"
    server = make_redis_server()
    with server.client() as admin:
        admin.config_set("requirepass", password)
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_HOST": "127.0.0.1",
            "CACHE_REDIS_PORT": server.port,
            "CACHE_REDIS_DB": 1,
            "CACHE_REDIS_PASSWORD": password,
            **FAST,
        }
    )
    assert stack.set("k", 1) is True
    with server.client(password=password, db=1) as db1:
        assert db1.exists("k") == 1


def test_cachelib_constructor_arguments(redis_server: RedisServer, redis_url: str) -> None:
    positional = RedisCache("127.0.0.1", redis_server.port, None, 1, 5, "x")
    keywords = RedisCache(
        host="127.0.0.1", port=redis_server.port, db=1, default_timeout=5, key_prefix="y"
    )
    for cache, prefix in [(positional, "x"), (keywords, "y")]:
        assert isinstance(cache, cachelib.BaseCache)
        assert cache.default_timeout == 5
        assert cache.set("k", {"v": 1}) is True
        assert cache.get("k") == {"v": 1}
        with redis_server.client(db=1) as db1:
            # A prefix ending with a letter gets its boundary, ":" (see naming.namespace).
            assert 0 < db1.pttl(prefix + ":k") <= 5000, "default_timeout applies, in seconds"


def test_ready_client_as_host(redis_server: RedisServer, redis_url: str) -> None:
    with redis_server.client(db=4) as client:
        for cls in (RedisCache, RedisCacheNoExceptions):
            # The connection arguments are ignored when the client is given.
            cache = cls(client, 1, "not-used", 0, key_prefix=cls.__name__)
            assert isinstance(cache, cachelib.BaseCache)
            assert cache.set("k", [1, 2]) is True
            assert cache.get("k") == [1, 2]
            assert client.exists(cls.__name__ + ":k") == 1
            assert "not-used" not in repr(cache)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(
            {"socket_timeout": 2},
            id="socket_timeout",
        ),
        pytest.param(
            {"socket_connect_timeout": 2},
            id="socket_connect_timeout",
        ),
        pytest.param(
            {"check_connection": True},
            id="check_connection",
        ),
        pytest.param(
            {"socket_keepalive": True, "socket_keepalive_options": {}},
            id="dict-option",
        ),
        pytest.param(
            {"key_prefix": lambda: "cb_"},
            id="callable-key_prefix",
        ),
    ],
)
@pytest.mark.parametrize("cls", [RedisCache, RedisCacheNoExceptions], ids=lambda c: c.__name__)
def test_cachelib_connection_keywords(
    redis_server: RedisServer, redis_url: str, cls: type[RedisCache], options: dict[str, Any]
) -> None:
    # cachelib.RedisCache passes these to redis.Redis; Flask-Caching passes CACHE_OPTIONS.
    cache = cls("127.0.0.1", redis_server.port, **options)
    assert cache.set("k", 1) is True
    assert cache.get("k") == 1


# -- what operations cost -----------------------------------------------------------------

CACHE_TYPES = ["RedisCache", "RedisCacheNoExceptions"]


@pytest.mark.parametrize("cache_type", CACHE_TYPES)
def test_shared_hit_costs_one_round_trip(
    redis_server: RedisServer, redis_url: str, cache_type: str
) -> None:
    stack = redis_stack(redis_url, cache_type)
    calls = Counter[int]()

    @cached_for(minutes=5, stack=stack)
    def double(x: int) -> int:
        calls[x] += 1
        return 2 * x

    assert double(1) == 2
    stack.local_cache.cache.clear()
    redis_server.reset_stats()
    assert double(1) == 2
    # One round trip: the value and its TTL, pipelined, so the local copy never outlives it.
    assert data_commands(redis_server) == {"get": 1, "pttl": 1}
    assert calls[1] == 1


@pytest.mark.parametrize("cache_type", CACHE_TYPES)
def test_a_shared_hit_with_no_tier_to_fill_is_one_get(
    redis_server: RedisServer, redis_url: str, cache_type: str
) -> None:
    # LOCALCACHE_TYPE=NullCache keeps nothing: no copy to bound, so no PTTL is asked for.
    stack = redis_stack(redis_url, cache_type, LOCALCACHE_TYPE="NullCache")

    @cached_for(minutes=5, stack=stack)
    def triple(x: int) -> int:
        return 3 * x

    assert triple(1) == 3
    redis_server.reset_stats()
    assert triple(1) == 3
    assert data_commands(redis_server) == {"get": 1}


@pytest.mark.parametrize("cache_type", CACHE_TYPES)
def test_miss_writes_value_and_tracking_in_one_command(
    redis_server: RedisServer, redis_url: str, cache_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = redis_stack(redis_url, cache_type)

    @cached_for(minutes=5, stack=stack)
    def double(x: int) -> int:
        return 2 * x

    assert double(0) == 0  # the pool has a connection now, the server the script
    sends = Counter[str]()
    send = redis.connection.AbstractConnection.send_packed_command
    caller = threading.get_ident()  # not the invalidation listener's PING of a quiet channel

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == caller:
            sends["send"] += 1
        send(self, command, check_health)

    def call() -> None:
        with monkeypatch.context() as patch:
            patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
            assert double(1) == 2

    redis_server.reset_stats()
    commands = monitored(redis_server, call)
    counts = data_commands(redis_server)
    assert sends["send"] == 2, "two round trips: the read that misses, the write"
    assert counts["get"] == 1, "the miss"
    assert counts.get("multi", 0) == counts.get("exec", 0) == 0, "no transaction to queue"
    assert counts["evalsha"] == 1, "the write is one script, atomic"
    assert (counts["set"], counts["zadd"]) == (1, 1)
    names = [command.split()[0].strip('"').upper() for command in commands]
    assert names[0] == "GET"
    start = names.index("EVALSHA")
    assert {"SET", "ZADD"} <= set(names[start + 1 :]), commands
    script = {"SET", "TIME", "ZADD", "ZREMRANGEBYSCORE", "ZRANGE", "PEXPIREAT", "PUBLISH"}
    assert set(names[start + 1 :]) <= script, f"nothing after the script's own: {commands}"


def test_tracked_write_survives_a_script_flush(raw: redis.Redis, redis_url: str) -> None:
    cache = RedisCache(url=redis_url, key_prefix=PREFIX)
    assert cache.set_tracked("a", 1, 60, "g") is True
    raw.script_flush()  # as after a restart or a failover: the server lacks the script
    assert cache.set_tracked("b", 2, 60, "g") is True
    assert (cache.get("a"), cache.get("b")) == (1, 2)
    [tracking] = zsets(raw)
    assert set(raw.zrange(tracking, 0, -1)) == {(PREFIX + "a").encode(), (PREFIX + "b").encode()}
    assert cache.clear_tracked("g") == 2


@pytest.mark.parametrize("cache_type", CACHE_TYPES)
def test_local_hit_sends_nothing(
    redis_server: RedisServer, redis_url: str, cache_type: str
) -> None:
    stack = redis_stack(redis_url, cache_type)

    @cached_for(minutes=5, stack=stack)
    def double(x: int) -> int:
        return 2 * x

    assert double(1) == 2
    redis_server.reset_stats()
    assert [double(1) for _ in range(10)] == [2] * 10
    assert data_commands(redis_server) == {}


# -- lookup_entry: the value and the server's TTL -----------------------------------------


@pytest.mark.parametrize("cls", [RedisCache, RedisCacheNoExceptions])
def test_lookup_entry_ttl_comes_from_the_server(
    raw: redis.Redis, redis_url: str, cls: type[RedisCache]
) -> None:
    cache = cls(url=redis_url, key_prefix=PREFIX)
    cache.set("k", {"v": 1}, timeout=3600)
    raw.pexpire(PREFIX + "k", 2500)  # the server's TTL, whatever the writer asked for
    value, remaining = cache.lookup_entry("k")
    assert value == {"v": 1}
    assert 2.4 < remaining <= 2.5
    raw.persist(PREFIX + "k")
    assert cache.lookup_entry("k") == ({"v": 1}, math.inf)
    raw.set(PREFIX + "n", b"42", px=60_000)  # an integer stored as digits, as lookup reads it
    value, remaining = cache.lookup_entry("n")
    assert (value, type(value)) == (42, int)
    assert 59 < remaining <= 60
    assert cache.lookup_entry("absent") == (NO_VALUE, None)


@pytest.mark.parametrize("cache_type", CACHE_TYPES)
def test_lookup_entry_is_one_round_trip(
    redis_server: RedisServer,
    redis_url: str,
    cache_type: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = getattr(rediscache, cache_type)(url=redis_url, key_prefix=PREFIX)
    cache.set("k", "v", timeout=60)
    cache.ping()  # the pool has a connection now
    sends = Counter[str]()
    send = redis.connection.AbstractConnection.send_packed_command
    caller = threading.get_ident()  # not the invalidation listener's PING of a quiet channel

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == caller:
            sends["send"] += 1
        send(self, command, check_health)

    redis_server.reset_stats()
    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        assert cache.lookup_entry("k")[0] == "v"
    assert sends["send"] == 1, "GET and PTTL go in one write"
    assert data_commands(redis_server) == {"get": 1, "pttl": 1}


def test_lookup_entry_of_an_unreadable_entry(raw: redis.Redis, redis_url: str) -> None:
    raw.set(PREFIX + "bad", b"\x80\x05garbage", px=60_000)
    strict = RedisCache(url=redis_url, key_prefix=PREFIX)
    with pytest.raises(DeserializationError):
        strict.lookup_entry("bad")
    assert strict.stats.deserialization_failures == 1
    lenient = RedisCacheNoExceptions(url=redis_url, key_prefix=PREFIX)
    assert lenient.lookup_entry("bad") == (NO_VALUE, None)
    assert lenient.stats.deserialization_failures == 1
    assert raw.exists(PREFIX + "bad") == 0, "deleted, as lookup deletes it"


def test_lookup_entry_verifies_signatures(raw: redis.Redis, redis_url: str) -> None:
    secret = "lookup-entry-secret-0123456789"
    cache = RedisCacheNoExceptions(url=redis_url, key_prefix=PREFIX, secret_key=secret)
    cache.set("n", 7, timeout=60)
    assert cache.lookup_entry("n")[0] == 7
    raw.set(PREFIX + "n", b"7", keepttl=True)  # digits, unsigned: not an entry of ours
    assert cache.lookup_entry("n") == (NO_VALUE, None)
    assert cache.stats.deserialization_failures == 1


def test_lookup_entry_error_reply_leaves_the_connection_in_step(
    raw: redis.Redis, redis_url: str
) -> None:
    # GET and PTTL leave in one write: an error reply to the GET must not leave the PTTL's
    # reply unread on the pooled connection, where the next read would take it for its own.
    cache = RedisCache(url=redis_url, key_prefix=PREFIX)
    raw.rpush(PREFIX + "list", b"x")  # GET answers WRONGTYPE, PTTL answers -1
    cache.set("k", "v", timeout=60)
    for _ in range(3):
        with pytest.raises(RedisCacheError, match="WRONGTYPE"):
            cache.lookup_entry("list")
        value, remaining = cache.lookup_entry("k")
        assert value == "v"
        assert 59 < remaining <= 60
    assert cache.lookup("k") == "v"


def test_lookup_entry_counts_an_outage_as_an_error(dead_url: str) -> None:
    cache = RedisCacheNoExceptions(
        url=dead_url, key_prefix=PREFIX, connect_timeout=0.2, read_timeout=0.5
    )
    assert cache.lookup_entry("k") == (NO_VALUE, None)
    assert cache.stats.errors == 1


# -- key tracking -------------------------------------------------------------------------


def test_clear_cache_deletes_exactly_the_functions_keys_in_batches(
    redis_server: RedisServer, raw: redis.Redis, redis_url: str
) -> None:
    stack = redis_stack(redis_url)
    calls = Counter[str]()

    @cached_for(minutes=5, stack=stack)
    def f(x: int) -> int:
        calls["f"] += 1
        return x

    @cached_for(minutes=5, stack=stack)
    def g(x: int) -> int:
        return -x

    for i in range(600):  # more than one batch (500)
        f(i)
    for i in range(5):
        g(i)
    stack.set("plain", 1)
    f_keys = {(PREFIX + f.cache_key(i)).encode() for i in range(600)}
    before = set(raw.scan_iter(count=1000))
    assert f_keys <= before
    [f_tracking] = [k for k in zsets(raw) if raw.zscore(k, next(iter(f_keys))) is not None]

    redis_server.reset_stats()
    removed = f.clear_cache()
    counts = data_commands(redis_server)

    assert removed >= 600
    assert set(raw.scan_iter(count=1000)) == before - f_keys - {f_tracking}
    assert "keys" not in counts, counts
    assert "scan" not in counts, counts
    assert counts.get("zrange", 0) >= 2, f"600 keys are read in batches: {counts}"
    assert stack.get("plain") == 1
    assert g(3) == -3
    f(1)
    assert calls["f"] == 601, "f's entries are gone from every layer"


def test_tracking_set_expires_and_is_trimmed_on_write(raw: redis.Redis, redis_url: str) -> None:
    stack = redis_stack(redis_url)

    @cached_for(seconds=1, stack=stack)
    def short(x: int) -> int:
        return x

    @cached_for(seconds=1, stack=stack)
    def other(x: int) -> int:
        return x

    for i in range(5):
        short(i)
    [tracking] = zsets(raw)
    assert 0 < raw.pttl(tracking) <= 1000, "the tracking set expires with its entries"
    assert raw.zcard(tracking) == 5
    # A longer-lived entry of the same function keeps the set alive, and longer.
    stack.shared_cache.cache.set_tracked("long", 1, 60, function_name(short.uncached))
    assert raw.pttl(tracking) > 50_000
    other(1)
    assert len(zsets(raw)) == 2

    time.sleep(1.2)
    short(5)
    assert set(raw.zrange(tracking, 0, -1)) == {
        (PREFIX + "long").encode(),
        (PREFIX + short.cache_key(5)).encode(),
    }, "members whose entry expired are trimmed on the next write"
    assert zsets(raw) == [tracking], "other's tracking set expired with its entry"


def test_tracking_set_outlives_an_entry_without_expiry(raw: redis.Redis, redis_url: str) -> None:
    cache = RedisCache(url=redis_url, key_prefix=PREFIX)
    cache.set_tracked("forever", 1, 0, "g")
    cache.set_tracked("hourly", 2, 3600, "g")
    [tracking] = zsets(raw)
    assert raw.pttl(tracking) == -1


# -- clear --------------------------------------------------------------------------------


def test_clear_deletes_only_keys_under_the_prefix(
    redis_server: RedisServer, raw: redis.Redis, redis_url: str
) -> None:
    app = RedisCache(url=redis_url, key_prefix=PREFIX)
    other = RedisCache(url=redis_url, key_prefix="other_")
    app.set_many({f"k{i}": i for i in range(1200)})
    app.set_tracked("t", 1, 60, "g")
    other.set_many({f"k{i}": i for i in range(10)})
    raw.set("raw", b"x")
    raw.set("app", b"y")
    raw.set("APP_k1", b"z")

    redis_server.reset_stats()
    assert app.clear() is True
    counts = data_commands(redis_server)

    survivors = {f"other_k{i}".encode() for i in range(10)} | {b"raw", b"app", b"APP_k1"}
    assert set(raw.scan_iter(count=1000)) == survivors
    assert counts.get("scan", 0) >= 2, f"scanned in batches: {counts}"
    assert counts.get("unlink", 0) >= 1, counts
    assert not {"keys", "flushdb", "flushall"} & counts.keys(), counts
    assert other.get("k3") == 3
    assert app.get("k3") is None


def test_clear_escapes_glob_characters_of_the_prefix(raw: redis.Redis, redis_url: str) -> None:
    prefix = "t*[ab]?\\_"
    cache = RedisCache(url=redis_url, key_prefix=prefix)
    cache.set("k", 1)
    decoys = {b"tXa?_k", b"t*b!_k", b"ta-_"}
    for decoy in decoys:
        raw.set(decoy, b"1")
    assert set(raw.scan_iter(match=prefix + "*")) == decoys, "each decoy matches the raw glob"
    assert cache.clear() is True
    assert set(raw.scan_iter()) == decoys


# -- monitoring ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [RedisCache, RedisCacheNoExceptions], ids=lambda c: c.__name__)
def test_info_reports_used_memory(redis_url: str, cls: type[RedisCache]) -> None:
    info = cls(url=redis_url).info()
    assert isinstance(info, dict)
    assert isinstance(info["used_memory"], int)
    assert info["used_memory"] > 0
    assert "keyspace_hits" in info


# -- RedisCache raises --------------------------------------------------------------------

# Each operation, and what RedisCacheNoExceptions returns instead of raising.
OPERATIONS: dict[str, tuple[Callable[[RedisCache], Any], Any]] = {
    "get": (lambda c: c.get("k"), None),
    "lookup": (lambda c: c.lookup("k"), NO_VALUE),
    "lookup_entry": (lambda c: c.lookup_entry("k"), (NO_VALUE, None)),
    "has": (lambda c: c.has("k"), False),
    "get_many": (lambda c: c.get_many("k", "l"), [None, None]),
    "set": (lambda c: c.set("k", 1), False),
    "set_tracked": (lambda c: c.set_tracked("k", 1, 60, "g"), False),
    "add": (lambda c: c.add("k", 1), False),
    "set_many": (lambda c: c.set_many({"k": 1, "l": 2}), []),
    "delete": (lambda c: c.delete("k"), False),
    "delete_many": (lambda c: c.delete_many("k", "l"), []),
    "inc": (lambda c: c.inc("n"), None),
    "clear": (lambda c: c.clear(), False),
    "clear_tracked": (lambda c: c.clear_tracked("g"), 0),
    "info": (lambda c: c.info(), {}),
}


@pytest.fixture
def dead_url(make_redis_server: Callable[[], RedisServer]) -> str:
    """The URL of a redis-server that was killed."""
    server = make_redis_server()
    server.kill()
    return server.url


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_redis_cache_raises_when_redis_is_down(dead_url: str, operation: str) -> None:
    cache = RedisCache(url=dead_url, key_prefix=PREFIX, connect_timeout=0.2, read_timeout=0.5)
    with pytest.raises(RedisCacheError) as failure:
        OPERATIONS[operation][0](cache)
    assert dead_url in str(failure.value), "the error names the server"
    assert isinstance(failure.value, CacheError)
    assert isinstance(failure.value.__cause__, RedisConnectionError)


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_no_exceptions_falls_back_when_redis_is_down(dead_url: str, operation: str) -> None:
    cache = RedisCacheNoExceptions(
        url=dead_url, key_prefix=PREFIX, connect_timeout=0.2, read_timeout=0.5
    )
    call, fallback = OPERATIONS[operation]
    result = call(cache)
    assert result == fallback
    assert type(result) is type(fallback)


# -- RedisCacheNoExceptions: self-healing -------------------------------------------------


def test_unreadable_entries_in_get_many_are_misses(raw: redis.Redis, redis_url: str) -> None:
    cache = RedisCacheNoExceptions(url=redis_url, key_prefix=PREFIX)
    cache.set("good", "g")
    raw.set(PREFIX + "bad", b"\x80\x05garbage")
    assert cache.get_many("good", "bad", "missing") == ["g", None, None]
    assert raw.exists(PREFIX + "bad") == 0
    assert cache.get("good") == "g"


# -- fork safety --------------------------------------------------------------------------


def _child(cache: RedisCache, n: int, parent_id: int) -> NoReturn:
    """Use the cache in a forked child; exit 0 if it had its own connection."""
    code = 99
    try:
        if connection._pools:
            code = 1  # the parent's pools were not forgotten
        else:
            for i in range(200):
                cache.set(f"child{n}_{i}", (n, i))
                if cache.get(f"child{n}_{i}") != (n, i):
                    code = 2  # replies got mixed up
                    break
            else:
                own = cache.client.client_id()
                cache.set(f"client_id_{n}", own)
                code = 3 if own == parent_id else 0
    finally:
        os._exit(code)


@pytest.mark.subprocess
def test_forked_children_use_their_own_connections(redis_url: str) -> None:
    cache = RedisCache(url=redis_url, key_prefix=PREFIX)
    assert cache.set("parent", "p") is True
    parent_id = cache.client.client_id()
    assert connection._pools
    children = []
    for n in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            _child(cache, n, parent_id)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert codes == [0, 0], "1: pools kept, 2: mixed replies, 3: parent's connection, 99: error"
    assert cache.client.client_id() == parent_id, "the parent's connection is intact"
    assert cache.get("parent") == "p"
    child_ids = {cache.get(f"client_id_{n}") for n in range(2)}
    assert len(child_ids) == 2
    assert parent_id not in child_ids
    assert cache.get("child1_199") == (1, 199)


def test_an_error_about_one_key_is_not_an_outage(redis_url: str) -> None:
    cache = RedisCacheNoExceptions(url=redis_url, key_prefix="app_")
    cache.set("pickled", [1, 2])
    assert cache.inc("pickled") is None, "INCRBY on a pickled value fails for that key only"
    assert cache.set("other", 1) is True, "and Redis is still used at once, no back-off"
    assert cache.get("other") == 1


def test_the_cluster_kind_of_a_client_is_its_type_s() -> None:
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.cluster import RedisCluster

    from stratacache_plugins.rediscache.naming import cluster_kind

    class Custom(redis.Redis):
        pass

    assert cluster_kind(redis.Redis()) is None
    assert cluster_kind(Custom()) is None
    assert cluster_kind(object.__new__(RedisCluster)) == "sync"
    assert cluster_kind(object.__new__(AsyncRedisCluster)) == "async"
    assert cluster_kind(redis.Redis()) is None, "the same answer once remembered"
