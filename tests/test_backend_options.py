"""Backend-owned options: each backend's model validates its keys, a third party's too."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from stratacache import BackendOptions, CacheStack, Tier, cached_for
from stratacache.options import OptionsError, accepts, option_keys, validate_options
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache.options import RedisCacheAtomicOptions, RedisCacheOptions
from stratacache_plugins.simple import SimpleCache
from tests.configuring import NUMERIC_OPTIONS, only_problem, problems_of

from .thirdparty_backend import DICT_SIZE_ACCEPTS, DictBackend, DictOptions

DICT_BACKEND = "tests.thirdparty_backend:DictBackend"


def dict_backend(tier: Tier) -> DictBackend:
    """The tier's backend, which must be a DictBackend."""
    backend = tier.cache
    assert isinstance(backend, DictBackend), backend
    return backend


def configured(config: dict[str, Any] | None = None) -> CacheStack:
    stack = CacheStack()
    stack.configure(config)
    return stack


class TestThirdPartyBackendOptions:
    """A backend outside stratacache declares its model; its keys are validated like ours."""

    def test_the_model_declares_its_flat_key(self) -> None:
        assert option_keys(DictOptions, "CACHE_") == {"CACHE_DICT_SIZE": "dict_size"}
        assert option_keys(DictOptions, "LOCALCACHE_") == {"LOCALCACHE_DICT_SIZE": "dict_size"}

    def test_a_valid_key_from_the_environment_reaches_the_backend(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CACHE_TYPE", DICT_BACKEND)
        monkeypatch.setenv("CACHE_DICT_SIZE", "42")
        stack = configured()
        backend = stack.shared_cache.cache
        assert type(backend) is DictBackend
        assert backend.dict_size == 42

    def test_the_backend_serves_as_the_shared_tier(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CACHE_TYPE", DICT_BACKEND)
        monkeypatch.setenv("CACHE_DICT_SIZE", "2")
        stack = configured()
        calls: list[int] = []

        @cached_for(minutes=1, stack=stack)
        def f(x: int) -> int:
            calls.append(x)
            return x

        f(1)
        stack.local_cache.cache.clear()
        f(1)
        assert calls == [1]
        f(2)
        f(3)
        assert len(dict_backend(stack.shared_cache)) == 2, "dict_size bounds it"

    def test_without_the_key_the_model_default_applies(self) -> None:
        stack = configured({"CACHE_TYPE": DICT_BACKEND})
        assert dict_backend(stack.shared_cache).dict_size == 100

    @pytest.mark.parametrize("value", ["0", "10001", "many", "-5"])
    def test_an_invalid_key_from_the_environment_names_the_key_value_and_range(
        self, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        monkeypatch.setenv("CACHE_TYPE", DICT_BACKEND)
        monkeypatch.setenv("CACHE_DICT_SIZE", value)
        problem = only_problem()
        assert problem.startswith(f"CACHE_DICT_SIZE={value!r}: ")
        assert f"(expected {DICT_SIZE_ACCEPTS})" in problem

    def test_an_invalid_key_given_to_configure_is_an_error_too(self) -> None:
        problem = only_problem({"CACHE_TYPE": DICT_BACKEND, "CACHE_DICT_SIZE": True})
        assert problem.startswith("CACHE_DICT_SIZE=True: a boolean is not a number")

    def test_a_local_tier_reads_the_localcache_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOCALCACHE_TYPE", DICT_BACKEND)
        monkeypatch.setenv("LOCALCACHE_DICT_SIZE", "3")
        stack = configured()
        assert type(stack.local_cache.cache) is DictBackend
        assert stack.local_cache.cache.dict_size == 3

    def test_an_invalid_localcache_key_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOCALCACHE_TYPE", DICT_BACKEND)
        monkeypatch.setenv("LOCALCACHE_DICT_SIZE", "0")
        assert only_problem().startswith("LOCALCACHE_DICT_SIZE='0': ")

    def test_a_cache_layers_spec_gives_the_option_by_field_name(self) -> None:
        stack = configured(
            {"CACHE_LAYERS": [{"type": DICT_BACKEND, "name": "dict", "dict_size": 7}]}
        )
        assert dict_backend(stack.tier("dict")).dict_size == 7

    def test_a_cache_layers_option_out_of_range_names_its_path(self) -> None:
        problem = only_problem(
            {"CACHE_LAYERS": [{"type": "SimpleCache"}, {"type": DICT_BACKEND, "dict_size": 50000}]}
        )
        assert problem.startswith("CACHE_LAYERS[1].dict_size=50000: ")
        assert f"(expected {DICT_SIZE_ACCEPTS})" in problem

    def test_a_misspelt_cache_layers_option_gets_a_did_you_mean(self) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": DICT_BACKEND, "dict_sise": 7}]})
        assert problem.startswith("CACHE_LAYERS[0].dict_sise: unknown option of DictOptions")
        assert "did you mean 'dict_size'?" in problem

    def test_cache_layers_from_the_environment_is_validated_too(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CACHE_LAYERS", json.dumps([{"type": DICT_BACKEND, "dict_size": 0}]))
        assert only_problem().startswith("CACHE_LAYERS[0].dict_size=0: ")


class TestBooleansAreNotNumbers:
    """True is 1 to Python; an option that wants a number refuses it, naming the key."""

    @pytest.mark.parametrize(
        ("cache_type", "key"),
        [
            ("SimpleCache", "CACHE_THRESHOLD"),
            ("SimpleCache", "LOCALCACHE_THRESHOLD"),
            ("FileSystemCache", "CACHE_THRESHOLD"),
            ("RedisCache", "CACHE_REDIS_PORT"),
            ("RedisCache", "CACHE_REDIS_DB"),
            ("RedisCache", "CACHE_REDIS_CONNECT_TIMEOUT"),
            ("RedisCache", "CACHE_REDIS_READ_TIMEOUT"),
            ("RedisCacheAtomic", "CACHE_ATOMIC_LOCK_TIMEOUT"),
            ("RedisCacheAtomic", "CACHE_ATOMIC_WAIT"),
            ("RedisCacheAtomic", "CACHE_ATOMIC_RETRIES"),
        ],
    )
    def test_a_boolean_for_a_number(self, tmp_path: Path, cache_type: str, key: str) -> None:
        config: dict[str, Any] = {"CACHE_TYPE": cache_type, key: True}
        if cache_type == "FileSystemCache":
            config["CACHE_DIR"] = str(tmp_path / "c")
        problem = only_problem(config)
        assert problem.startswith(f"{key}=True: a boolean is not a number")

    def test_a_boolean_in_a_cache_layers_spec(self) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": "RedisCache", "port": True}]})
        assert problem.startswith("CACHE_LAYERS[0].port=True: a boolean is not a number")

    @pytest.mark.parametrize(
        ("model", "field"),
        NUMERIC_OPTIONS,
    )
    def test_every_numeric_field_of_the_first_party_models(
        self, model: type[BackendOptions], field: str
    ) -> None:
        with pytest.raises(OptionsError) as info:
            validate_options(model, {field: True}, {"*": "SPEC"})
        assert info.value.problems == [
            f"SPEC.{field}=True: a boolean is not a number (expected {accepts(model, field)})"
        ]


class TestSimpleOptions:
    def test_a_negative_localcache_threshold_is_refused_once(self) -> None:
        # Read by both local tiers, reported once.
        problem = only_problem({"LOCALCACHE_THRESHOLD": -1})
        assert problem.startswith("LOCALCACHE_THRESHOLD=-1: ")
        assert "0 = no limit" in problem

    def test_threshold_0_means_no_limit_for_simple_cache(self) -> None:
        stack = configured({"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 0})
        backend = stack.shared_cache.cache
        for i in range(600):  # past cachelib's 500, which 0 used to mean
            backend.set(f"k{i}", i)
        assert len(backend) == 600

    def test_localcache_threshold_bounds_both_local_tiers(self) -> None:
        stack = configured({"CACHE_TYPE": "SimpleCache", "LOCALCACHE_THRESHOLD": 3})
        for tier in (stack.local_cache, stack.local_cache_no_serializer):
            assert tier.config.options["threshold"] == 3, tier.name
        assert stack.shared_cache.config.options["threshold"] == 500

    def test_a_threshold_from_the_environment_is_parsed(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CACHE_TYPE", "SimpleCache")
        monkeypatch.setenv("CACHE_THRESHOLD", "2")
        stack = configured()
        backend = stack.shared_cache.cache
        assert isinstance(backend, SimpleCache)
        for i in range(5):
            backend.set(f"k{i}", i)
        assert len(backend) == 2


class TestFileSystemOptions:
    def test_cache_threshold_0_means_no_limit(self, tmp_path: Path) -> None:
        directory = tmp_path / "c"
        stack = configured(
            {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(directory), "CACHE_THRESHOLD": 0}
        )
        backend = stack.shared_cache.cache
        assert isinstance(backend, FileSystemCache)
        for i in range(600):  # past the default threshold of 500
            backend.set(f"k{i}", i)
        assert len(list(directory.glob("*.entry"))) == 600
        assert backend.get("k0") == 0

    def test_a_threshold_below_0_is_refused(self, tmp_path: Path) -> None:
        problem = only_problem(
            {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path), "CACHE_THRESHOLD": -1}
        )
        assert problem.startswith("CACHE_THRESHOLD=-1: ")
        assert "(expected a whole number >= 0 (0 = no limit))" in problem

    def test_a_cache_dir_that_is_a_file_is_refused(self, tmp_path: Path) -> None:
        file = tmp_path / "file"
        file.write_text("")
        problem = only_problem({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(file)})
        assert problem.startswith(f"CACHE_DIR={str(file)!r}: not a directory")

    def test_an_empty_cache_dir_is_refused(self) -> None:
        problem = only_problem({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": " "})
        assert problem.startswith("CACHE_DIR=' ': empty")

    def test_cache_dir_is_the_backend_directory(self, tmp_path: Path) -> None:
        stack = configured({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "d")})
        stack.set("k", 1)
        assert len(list((tmp_path / "d").glob("*.entry"))) == 1


class TestRedisOptions:
    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("localhost:6379", "not a URL (no scheme)"),
            ("http://cache/0", "unsupported URL scheme 'http'"),
            ("redis://cache:99999/0", "malformed URL"),
            ("redis://cache:port/0", "malformed URL"),
            ("redis://cache:6379/abc", "the URL's path '/abc' is not a database number"),
            ("redis:///0", "the URL has no host name"),
            ("unix://", "a unix:// URL needs the socket's path"),
        ],
    )
    def test_url_grammar_errors_name_the_key_and_what_is_wrong(self, url: str, reason: str) -> None:
        problem = only_problem({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url})
        assert problem.startswith(f"CACHE_REDIS_URL={url!r}: {reason}")
        assert "(expected a redis://, rediss:// or unix:// URL)" in problem

    @pytest.mark.parametrize(
        "url",
        [
            "redis://cache:6379/0",
            "rediss://cache:6380/2",
            "unix:///run/redis.sock",
            "redis://[::1]:6379",
        ],
    )
    def test_good_urls_are_accepted(self, url: str) -> None:
        stack = configured({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url})
        assert stack.shared_cache.config.options["url"] == url

    def test_the_password_of_a_bad_url_is_masked(self) -> None:
        problem = only_problem(
            {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "http://:hunter2@cache/0"}
        )
        assert "hunter2" not in problem
        assert problem.startswith("CACHE_REDIS_URL='http://:**********@cache/0'")

    def test_a_host_with_a_port_says_where_the_port_goes(self) -> None:
        problem = only_problem({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "cache:6379"})
        assert problem.startswith("CACHE_REDIS_HOST='cache:6379': not a host name")
        assert "CACHE_REDIS_PORT" in problem

    def test_a_host_may_be_a_url_checked_by_the_same_grammar(self) -> None:
        problem = only_problem({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "redis://c/x"})
        assert problem.startswith("CACHE_REDIS_HOST='redis://c/x': the URL's path '/x'")

    @pytest.mark.parametrize(
        ("key", "value", "expected"),
        [
            ("CACHE_REDIS_PORT", 0, "a port number from 1 to 65535"),
            ("CACHE_REDIS_PORT", 65536, "a port number from 1 to 65535"),
            ("CACHE_REDIS_DB", -1, "a database number >= 0"),
            ("CACHE_REDIS_CONNECT_TIMEOUT", 0, "a number of seconds > 0, at most 3600 (1 hour)"),
            ("CACHE_REDIS_READ_TIMEOUT", -1, "a number of seconds > 0, at most 3600 (1 hour)"),
            ("CACHE_REDIS_HOST", "", "a host name, or a redis://, rediss:// or unix:// URL"),
        ],
    )
    def test_bounds(self, key: str, value: object, expected: str) -> None:
        problem = only_problem({"CACHE_TYPE": "RedisCacheNoExceptions", key: value})
        assert problem.startswith(f"{key}={value!r}: ")
        assert f"(expected {expected})" in problem

    def test_the_password_is_masked_in_problems(self) -> None:
        problem = only_problem({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PASSWORD": 12345})
        assert problem.startswith("CACHE_REDIS_PASSWORD='**********': ")
        assert "12345" not in problem

    def test_keys_from_the_environment_are_parsed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CACHE_TYPE", "RedisCache")
        monkeypatch.setenv("CACHE_REDIS_HOST", "127.0.0.1")
        monkeypatch.setenv("CACHE_REDIS_PORT", "6380")
        monkeypatch.setenv("CACHE_REDIS_CONNECT_TIMEOUT", "0.25")
        options = configured().shared_cache.config.options
        assert (options["host"], options["port"], options["connect_timeout"]) == (
            "127.0.0.1",
            6380,
            0.25,
        )

    def test_atomic_keys_are_not_options_of_redis_cache(self) -> None:
        problem = only_problem({"CACHE_TYPE": "RedisCache", "CACHE_ATOMIC_RETRIES": 3})
        assert problem.startswith("CACHE_ATOMIC_RETRIES=3: an option of RedisCacheAtomic")


class TestRedisAtomicOptions:
    @pytest.mark.parametrize(
        ("key", "value", "expected"),
        [
            ("CACHE_ATOMIC_LOCK_TIMEOUT", 0, "a number of seconds > 0, at most 86400 (1 day)"),
            ("CACHE_ATOMIC_WAIT", -1, "a number of seconds > 0, at most 86400 (1 day)"),
            ("CACHE_ATOMIC_RETRIES", 0, "a whole number >= 1, at most 1000"),
            ("CACHE_ATOMIC_RETRIES", 1.5, "a whole number >= 1, at most 1000"),
        ],
    )
    def test_bounds(self, key: str, value: object, expected: str) -> None:
        problem = only_problem({"CACHE_TYPE": "RedisCacheAtomic", key: value})
        assert problem.startswith(f"{key}={value!r}: ")
        assert f"(expected {expected})" in problem

    def test_every_bad_key_is_reported_at_once(self) -> None:
        problems = problems_of(
            {
                "CACHE_TYPE": "RedisCacheAtomic",
                "CACHE_ATOMIC_LOCK_TIMEOUT": 0,
                "CACHE_ATOMIC_RETRIES": 0,
                "CACHE_REDIS_PORT": 0,
            }
        )
        assert sorted(p.split("=", 1)[0] for p in problems) == [
            "CACHE_ATOMIC_LOCK_TIMEOUT",
            "CACHE_ATOMIC_RETRIES",
            "CACHE_REDIS_PORT",
        ]

    def test_it_owns_the_connection_keys_and_the_atomic_keys(self) -> None:
        keys = set(option_keys(RedisCacheAtomicOptions, "CACHE_"))
        assert set(option_keys(RedisCacheOptions, "CACHE_")) < keys
        assert keys - set(option_keys(RedisCacheOptions, "CACHE_")) == {
            "CACHE_ATOMIC_LOCK_TIMEOUT",
            "CACHE_ATOMIC_WAIT",
            "CACHE_ATOMIC_OUTAGE_AFTER",
            "CACHE_ATOMIC_RETRIES",
        }

    def test_valid_atomic_keys_reach_the_backend_options(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("CACHE_TYPE", "RedisCacheAtomic")
        monkeypatch.setenv("CACHE_ATOMIC_LOCK_TIMEOUT", "5")
        monkeypatch.setenv("CACHE_ATOMIC_WAIT", "6.5")
        monkeypatch.setenv("CACHE_ATOMIC_RETRIES", "2")
        with caplog.at_level(logging.WARNING, logger="stratacache.assembly"):
            options = configured().shared_cache.config.options
        assert (options["lock_timeout"], options["lock_wait"], options["atomic_retries"]) == (
            5.0,
            6.5,
            2,
        )
        assert not [r for r in caplog.records if r.name == "stratacache.assembly"]
