"""Signed payloads (CACHE_SECRET_KEY): planted or tampered bytes are never deserialized."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

import stratacache.assembly_checks
from stratacache import CacheStack, ConfigurationError, DeserializationError, cached_for
from stratacache.settings import MASK, CacheSettings
from stratacache.signing import MAGIC, SignatureError, Signer
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic, RedisCacheNoExceptions

SECRET = "s3cret-key-0123456789abcdef"
OLD_SECRET = "old-secret-key-9876543210fedcba"


class Exploit:
    """A payload that creates ``path`` when unpickled: what an attacker would plant."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


# -- the signer -------------------------------------------------------------------------------


def test_a_signed_payload_verifies_under_its_key_only() -> None:
    signer = Signer([SECRET])
    payload = signer.sign("k", b"data")
    assert payload.startswith(MAGIC)
    assert signer.verify("k", payload) == b"data"
    with pytest.raises(SignatureError, match="matches none"):
        signer.verify("other", payload)  # copied to another key
    with pytest.raises(SignatureError, match="matches none"):
        Signer([OLD_SECRET]).verify("k", payload)
    with pytest.raises(SignatureError, match="not signed"):
        signer.verify("k", b"data")


def test_rotation_signs_with_the_first_key_and_accepts_any() -> None:
    old = Signer([OLD_SECRET]).sign("k", b"v")
    rotated = Signer([SECRET, OLD_SECRET])
    assert rotated.verify("k", old) == b"v"
    assert Signer([SECRET]).verify("k", rotated.sign("k", b"v")) == b"v"
    with pytest.raises(SignatureError):
        Signer([OLD_SECRET]).verify("k", rotated.sign("k", b"v"))


def test_short_or_missing_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        Signer(["short"])
    with pytest.raises(ValueError, match="at least one"):
        Signer([])


@given(data=st.binary(max_size=200), flip=st.integers(min_value=0))
def test_any_altered_byte_fails_verification(data: bytes, flip: int) -> None:
    signer = Signer([SECRET])
    payload = bytearray(signer.sign("key", data))
    position = flip % len(payload)
    payload[position] ^= 0x01
    with pytest.raises(SignatureError):
        signer.verify("key", bytes(payload))


@given(st.binary(max_size=100))
def test_random_bytes_never_verify(data: bytes) -> None:
    with pytest.raises(SignatureError):
        Signer([SECRET]).verify("key", MAGIC + data)


# -- settings ---------------------------------------------------------------------------------


def test_secret_key_from_the_environment_single_or_rotated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_SECRET_KEY", SECRET)
    assert [k.get_secret_value() for k in CacheSettings().cache_secret_key] == [SECRET]
    monkeypatch.setenv("CACHE_SECRET_KEY", f'["{SECRET}", "{OLD_SECRET}"]')
    settings = CacheSettings()
    assert [k.get_secret_value() for k in settings.cache_secret_key] == [SECRET, OLD_SECRET]
    assert settings.as_mapping()["CACHE_SECRET_KEY"] == [MASK, MASK]
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.as_mapping())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tooshort", "key #1 is 8 bytes long"),
        ('["ok-secret-0123456789", "x"]', "key #2 is 1 bytes long"),
        ("[not json", "not a JSON list"),
        ("[1234567890123456789]", "key #1 is not a string"),
    ],
)
def test_bad_secret_keys_name_the_key_and_never_show_the_value(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        CacheSettings.from_mapping({"CACHE_SECRET_KEY": value})
    text = str(excinfo.value)
    assert "CACHE_SECRET_KEY" in text
    assert message in text
    assert value not in text


def test_the_layer_config_masks_the_secret(redis_url: str) -> None:
    stack = CacheStack()
    stack.configure(
        {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, "CACHE_SECRET_KEY": SECRET}
    )
    assert stack.shared_cache.config.options["secret_key"] == MASK
    assert SECRET not in repr(stack.shared_cache.config)
    assert stack.shared_cache.cache.signer is not None
    assert stack.local_cache.cache.signer is None  # in-process: nothing to sign


# -- the canary: a planted pickle never runs ----------------------------------------------------


def _plant(client: redis.Redis, key: str, canary: Path) -> None:
    client.set(key, pickle.dumps(Exploit(canary)))


def test_the_planted_payload_is_live_without_a_secret(redis_url: str, tmp_path: Path) -> None:
    """The control: unsigned, the exploit runs, so the tests below can fail."""
    canary = tmp_path / "canary"
    cache = RedisCache(url=redis_url)
    _plant(cache.client, "k", canary)
    cache.get("k").close()  # the exploit's return value: an open file
    assert canary.exists()


def test_no_exceptions_deletes_a_planted_payload_as_a_miss(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canary = tmp_path / "canary"
    cache = RedisCacheNoExceptions(url=redis_url, key_prefix="app:", secret_key=SECRET)
    _plant(cache.client, "app:k", canary)
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None
    assert not canary.exists()
    assert cache.client.exists("app:k") == 0
    assert "not signed" in caplog.text


def test_redis_cache_raises_on_a_planted_payload(redis_url: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    cache = RedisCache(url=redis_url, secret_key=SECRET)
    _plant(cache.client, "k", canary)
    with pytest.raises(SignatureError) as excinfo:
        cache.get("k")
    assert isinstance(excinfo.value, DeserializationError)
    with pytest.raises(SignatureError):
        cache.get_many("k")
    assert not canary.exists()


def test_a_decorated_function_recomputes_over_a_planted_payload(
    redis_url: str, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCacheNoExceptions",
            "CACHE_REDIS_URL": redis_url,
            "CACHE_SECRET_KEY": SECRET,
            "LOCALCACHE_TYPE": "NullCache",
        }
    )
    calls: list[int] = []

    @cached_for(minutes=1, stack=stack)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    _plant(stack.shared_cache.cache.client, double.cache_key(4), canary)
    assert double(4) == 8
    assert double(4) == 8
    assert calls == [4]  # recomputed once, then served from the signed entry
    assert not canary.exists()
    stored = stack.shared_cache.cache.client.get(double.cache_key(4))
    assert stored is not None
    assert stored.startswith(MAGIC)


def test_a_signed_entry_moved_to_another_key_is_refused(redis_url: str) -> None:
    cache = RedisCacheNoExceptions(url=redis_url, secret_key=SECRET)
    cache.set("price:a", 10.0)
    client = cache.client
    client.set("price:b", client.get("price:a") or b"")
    assert cache.get("price:a") == 10.0
    assert cache.get("price:b") is None
    assert client.exists("price:b") == 0


def test_file_system_cache_never_deserializes_a_planted_file(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    directory = tmp_path / "cache"
    FileSystemCache(directory).set("k", Exploit(canary))  # an attacker writing unsigned
    signed = FileSystemCache(directory, secret_key=SECRET)
    assert signed.get("k") is None
    assert not canary.exists()
    assert [n for n in os.listdir(directory) if n.endswith(".entry")] == []  # removed
    signed.set("k", {"a": 1})
    assert signed.get("k") == {"a": 1}
    assert FileSystemCache(directory, secret_key=OLD_SECRET).get("k") is None


# -- signed operation -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", [RedisCache, RedisCacheNoExceptions, RedisCacheAtomic])
def test_signed_round_trips_of_every_kind_of_value(
    backend: type[RedisCache], redis_url: str
) -> None:
    cache = backend(url=redis_url, secret_key=[SECRET, OLD_SECRET])
    values = {"int": 7, "neg": -3, "none": None, "str": "x", "list": [1, (2, 3)], "big": 10**30}
    for key, value in values.items():
        assert cache.set(key, value)
    assert cache.get_many(*values) == list(values.values())
    for key in values:
        assert (cache.client.get(key) or b"").startswith(MAGIC)
    assert cache.add("new", 1)
    assert not cache.add("new", 2)
    cache.set_many({"m1": 1, "m2": "two"})
    assert cache.get_many("m1", "m2") == [1, "two"]


def test_signed_counters_increment_atomically_and_keep_their_expiry(redis_url: str) -> None:
    cache = RedisCache(url=redis_url, secret_key=SECRET)
    assert cache.inc("hits") == 1
    assert cache.inc("hits", 5) == 6
    assert cache.dec("hits", 2) == 4
    assert cache.get("hits") == 4
    cache.set("ttl", 1, timeout=100)
    cache.inc("ttl")
    assert 0 < cache.client.pttl("ttl") <= 100_000
    cache.set("text", "abc")
    with pytest.raises(TypeError, match="not an integer"):
        cache.inc("text")


def test_signed_counters_across_threads(redis_url: str) -> None:
    import threading

    cache = RedisCache(url=redis_url, secret_key=SECRET)

    def work() -> None:
        for _ in range(50):
            cache.inc("n")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("n") == 200


def test_rotation_reads_entries_signed_with_the_old_key(redis_url: str) -> None:
    RedisCache(url=redis_url, secret_key=OLD_SECRET).set("k", "v")
    assert RedisCache(url=redis_url, secret_key=[SECRET, OLD_SECRET]).get("k") == "v"
    retired = RedisCacheNoExceptions(url=redis_url, secret_key=SECRET)
    assert retired.get("k") is None  # the old key was retired: the entry is refused


def test_at_most_once_commits_are_signed(redis_url: str) -> None:
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCacheAtomic",
            "CACHE_REDIS_URL": redis_url,
            "CACHE_SECRET_KEY": SECRET,
        }
    )

    @cached_for(minutes=1, atomic_writes="at_most_once", stack=stack)
    def square(x: int) -> int:
        return x * x

    assert square(3) == 9
    stored = stack.shared_cache.cache.client.get(square.cache_key(3))
    assert stored is not None
    assert stored.startswith(MAGIC)


# -- the start-up warning ---------------------------------------------------------------------


@pytest.fixture
def warn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stratacache.assembly_checks, "_warned_unsigned", False)


@pytest.mark.usefixtures("warn_again")
def test_unsigned_pickle_in_a_shared_layer_warns_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="stratacache.assembly"):
        for _ in range(2):
            CacheStack().configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url})
    warnings = [r for r in caplog.records if "CACHE_SECRET_KEY" in r.getMessage()]
    assert len(warnings) == 1
    assert "RedisCache" in warnings[0].getMessage()


@pytest.mark.usefixtures("warn_again")
@pytest.mark.parametrize(
    "config",
    [
        {"CACHE_SECRET_KEY": SECRET},
        {"CACHE_SERIALIZER": "json"},
    ],
)
def test_no_warning_when_signed_or_not_pickle(
    redis_url: str, caplog: pytest.LogCaptureFixture, config: dict[str, str]
) -> None:
    with caplog.at_level(logging.WARNING, logger="stratacache.assembly"):
        CacheStack().configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, **config})
    assert "CACHE_SECRET_KEY" not in caplog.text


@pytest.mark.usefixtures("warn_again")
def test_no_warning_for_an_in_process_shared_layer(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stratacache.assembly"):
        CacheStack().configure({"CACHE_TYPE": "SimpleCache"})
    assert "CACHE_SECRET_KEY" not in caplog.text


# -- the review's findings, as regression tests -------------------------------------------------


def test_a_signed_file_moved_under_another_prefix_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    tenant_a = FileSystemCache(directory, key_prefix="tenantA:", secret_key=SECRET)
    tenant_b = FileSystemCache(directory, key_prefix="tenantB:", secret_key=SECRET)
    tenant_a.set("balance", 100)
    tenant_b.set("balance", 5)
    Path(tenant_a._path("balance")).replace(tenant_b._path("balance"))  # the attacker's move
    assert tenant_b.get("balance") is None
    assert tenant_a.get("balance") is None  # gone: it was moved


def test_a_signed_redis_entry_moved_under_another_prefix_is_refused(redis_url: str) -> None:
    tenant_a = RedisCacheNoExceptions(url=redis_url, key_prefix="a:", secret_key=SECRET)
    tenant_b = RedisCacheNoExceptions(url=redis_url, key_prefix="b:", secret_key=SECRET)
    tenant_a.set("balance", 100)
    client = tenant_a.client
    client.set("b:balance", client.get("a:balance") or b"")
    assert tenant_b.get("balance") is None
    assert tenant_a.get("balance") == 100


class Unsigning(FileSystemCache):
    """A third-party backend written before signing: it takes no secret_key."""

    def __init__(self, cache_dir: str | None = None, threshold: int = 500) -> None:
        super().__init__(cache_dir, threshold)


def test_a_shared_backend_that_cannot_sign_is_refused_when_a_key_is_set() -> None:
    with pytest.raises(ConfigurationError, match=r"CACHE_SECRET_KEY is set, but the shared"):
        CacheStack().configure(
            {
                "CACHE_TYPE": f"{__name__}:Unsigning",
                "CACHE_DIR": os.getcwd(),
                "CACHE_SECRET_KEY": SECRET,
            }
        )


def test_a_secret_never_reaches_a_traceback() -> None:
    import traceback

    for value in ("hunter2pass", f'["{SECRET}", "x"]'):
        with pytest.raises(ConfigurationError) as excinfo:
            CacheSettings.from_mapping({"CACHE_SECRET_KEY": value})
        assert excinfo.value.__cause__ is None
        assert excinfo.value.__context__ is None
        printed = "".join(traceback.format_exception(excinfo.value))
        assert "hunter2pass" not in printed
        assert SECRET not in printed


def test_signed_inc_gives_up_after_bounded_races(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratacache_plugins.rediscache import codec as codec_module
    from stratacache_plugins.rediscache.cache import RedisCacheError

    cache = RedisCache(url=redis_url, secret_key=SECRET)
    cache.set("n", 1)
    monkeypatch.setattr(codec_module, "_SIGNED_INC_ATTEMPTS", 3)
    rival = redis.Redis.from_url(redis_url)
    loads = cache.load_value

    def load_then_race(key: str, data: bytes) -> Any:
        rival.set("n", data)  # another client writes between WATCH and EXEC, every time
        return loads(key, data)

    monkeypatch.setattr(cache, "load_value", load_then_race)
    with pytest.raises(RedisCacheError, match="INCRBY"):
        cache.inc("n")
    quiet = RedisCacheNoExceptions(url=redis_url, secret_key=SECRET)
    monkeypatch.setattr(quiet, "load_value", load_then_race)
    assert quiet.inc("n") is None
    rival.close()
