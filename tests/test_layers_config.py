"""Configuring the tiers: CACHE_LAYERS and its errors, the seed's keys, leftover keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from stratacache import CacheStack, ConfigurationError, cached_for
from stratacache_plugins.null import NullCache
from stratacache_plugins.rediscache import RedisCacheNoExceptions
from stratacache_plugins.simple import SimpleCache

from .configuring import only_problem, problems_of
from .conftest import clean_env, run_python
from .redis_server import RedisServer


def assembly_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "stratacache.assembly" and r.levelno == logging.WARNING
    ]


REDIS_SPEC = {"type": "RedisCache", "url": "redis://127.0.0.1:1/0"}


class TestBadCacheLayers:
    """Each bad CACHE_LAYERS is a ConfigurationError; its problem names CACHE_LAYERS, the path."""

    def test_not_json_in_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CACHE_LAYERS", "[{type: SimpleCache}]")
        problem = only_problem()
        assert problem.startswith("CACHE_LAYERS='[{type: SimpleCache}]': not valid JSON")
        assert "write a JSON list" in problem

    def test_not_a_list(self) -> None:
        problem = only_problem({"CACHE_LAYERS": {"type": "SimpleCache"}})
        assert problem.startswith("CACHE_LAYERS=")
        assert "must be a list of tier specs, got dict" in problem

    def test_not_a_list_in_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CACHE_LAYERS", '{"type": "SimpleCache"}')
        assert "must be a list of tier specs, got dict" in only_problem()

    def test_a_spec_that_is_not_an_object(self) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": "SimpleCache"}, "RedisCache"]})
        assert problem.startswith("CACHE_LAYERS[1]='RedisCache': a tier spec is a JSON object")

    def test_a_spec_without_a_type(self) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"name": "memory"}]})
        assert problem.startswith("CACHE_LAYERS[0].type=None: every tier needs a backend type")

    def test_an_unknown_type_suggests_the_closest_backend(self) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": "SimpleCache"}, {"type": "RedisCach"}]})
        assert problem.startswith("CACHE_LAYERS[1].type='RedisCach': unknown cache backend")
        assert "Did you mean 'RedisCache'?" in problem

    def test_an_unknown_option_suggests_the_closest_option(self) -> None:
        problem = only_problem(
            {"CACHE_LAYERS": [{"type": "RedisCache", "urll": "redis://127.0.0.1:1/0"}]}
        )
        assert problem.startswith("CACHE_LAYERS[0].urll: unknown option")
        assert "did you mean 'url'?" in problem

    def test_duplicate_names(self) -> None:
        problem = only_problem(
            {
                "CACHE_LAYERS": [
                    {"type": "SimpleCache", "name": "memory"},
                    {"type": "FileSystemCache", "name": "memory"},
                ]
            }
        )
        assert problem.startswith("CACHE_LAYERS[1].name='memory': the name of CACHE_LAYERS[0] too")

    def test_a_repeated_type_needs_names(self) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": "SimpleCache"}, {"type": "SimpleCache"}]})
        assert problem.startswith("CACHE_LAYERS[1].name='SimpleCache'")
        assert '"name" is required when a type repeats' in problem

    def test_a_bad_tier_name(self) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": "SimpleCache", "name": "my tier"}]})
        assert problem.startswith("CACHE_LAYERS[0].name='my tier': a tier name is a word")

    def test_an_empty_list(self) -> None:
        problem = only_problem({"CACHE_LAYERS": []})
        assert problem.startswith("CACHE_LAYERS=[]: an empty list has no tier")
        assert "unset CACHE_LAYERS for the default stack" in problem

    @pytest.mark.parametrize(
        "timeout", [-1, -0.5, "60", True, float("inf"), float("nan"), 1e30], ids=repr
    )
    def test_a_timeout_that_is_not_seconds_at_least_0(self, timeout: object) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": "SimpleCache", "timeout": timeout}]})
        assert problem.startswith(f"CACHE_LAYERS[0].timeout={timeout!r}: ")
        assert "seconds >= 0" in problem

    def test_a_bad_option_value_names_its_path_and_the_accepted_range(self) -> None:
        problem = only_problem(
            {"CACHE_LAYERS": [{"type": "SimpleCache"}, {"type": "RedisCache", "port": 70000}]}
        )
        assert problem.startswith("CACHE_LAYERS[1].port=70000: ")
        assert "(expected a port number from 1 to 65535)" in problem

    def test_every_problem_of_every_spec_is_reported_at_once(self) -> None:
        problems = problems_of(
            {
                "CACHE_LAYERS": [
                    {"type": "SimpleCache", "threshold": -1},
                    {"type": "RedisCache", "port": 70000, "urll": "redis://x/0"},
                ]
            }
        )
        paths = sorted(p.split(":", 1)[0].split("=", 1)[0] for p in problems)
        assert paths == [
            "CACHE_LAYERS[0].threshold",
            "CACHE_LAYERS[1].port",
            "CACHE_LAYERS[1].urll",
        ]

    def test_a_secret_in_a_bad_spec_is_masked(self) -> None:
        problem = only_problem(
            {"CACHE_LAYERS": [{"type": "RedisCache", "url": "http://:hunter2@cache:6379/0"}]}
        )
        assert problem.startswith("CACHE_LAYERS[0].url=")
        assert "hunter2" not in problem
        assert "unsupported URL scheme 'http'" in problem


class TestGoodCacheLayers:
    def test_from_the_environment_as_json(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        layers = [
            {"type": "SimpleCache", "name": "memory", "timeout": 60},
            {"type": "FileSystemCache", "name": "disk", "cache_dir": str(tmp_path / "d")},
        ]
        monkeypatch.setenv("CACHE_LAYERS", json.dumps(layers))
        stack = CacheStack()
        stack.configure()
        assert [(t.name, t.config.type) for t in stack.tiers] == [
            ("memory", "SimpleCache"),
            ("disk", "FileSystemCache"),
        ]
        assert stack.tier("memory").cap == 60
        assert stack.tier("disk").cap == 0

    def test_a_tier_is_named_after_its_type_by_default(self) -> None:
        stack = CacheStack()
        stack.configure({"CACHE_LAYERS": [{"type": "SimpleCache"}, {"type": "NullCache"}]})
        assert [t.name for t in stack.tiers] == ["SimpleCache", "NullCache"]

    def test_the_documented_example_builds_without_a_warning(self) -> None:
        # The pytest configuration turns warnings into errors: a cachelib DeprecationWarning
        # about a float timeout fails this test.
        stack = CacheStack()
        stack.configure({"CACHE_LAYERS": [{"type": "SimpleCache", "timeout": 60}]})
        assert stack.tiers[0].cap == 60

    def test_options_of_a_spec_reach_the_backend(self, tmp_path: Path) -> None:
        stack = CacheStack()
        stack.configure(
            {
                "CACHE_LAYERS": [
                    {"type": "SimpleCache", "name": "memory", "threshold": 7},
                    {"type": "FileSystemCache", "name": "disk", "cache_dir": str(tmp_path / "x")},
                ]
            }
        )
        assert stack.tier("memory").config.options["threshold"] == 7
        assert (tmp_path / "x").is_dir()


class TestCacheLayersBesideTheSeedKeys:
    """CACHE_LAYERS replaces the per-layer keys: giving both is an error naming what to remove."""

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("CACHE_TYPE", "SimpleCache"),
            ("LOCALCACHE_TYPE", "SimpleCache"),
            ("CACHE_REDIS_URL", "redis://127.0.0.1:1/0"),
            ("CACHE_REDIS_PORT", 6380),
            ("CACHE_DIR", "/tmp/somewhere"),
        ],
    )
    def test_given_to_configure(self, key: str, value: object) -> None:
        problem = only_problem({"CACHE_LAYERS": [{"type": "SimpleCache"}], key: value})
        assert problem.startswith(key)
        assert "beside CACHE_LAYERS" in problem
        assert f"remove {key}" in problem

    @pytest.mark.parametrize("key", ["CACHE_TYPE", "CACHE_REDIS_URL"])
    def test_from_the_environment_too(self, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
        monkeypatch.setenv("CACHE_LAYERS", json.dumps([REDIS_SPEC]))
        monkeypatch.setenv(key, "RedisCache" if key == "CACHE_TYPE" else "redis://127.0.0.1:1/0")
        problem = only_problem()
        assert f"remove {key}" in problem

    def test_both_are_reported_at_once_with_the_password_masked(self) -> None:
        problems = problems_of(
            {
                "CACHE_LAYERS": [{"type": "SimpleCache"}],
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_URL": "redis://:hunter2@cache:6379/0",
            }
        )
        assert sorted(p.split(":", 1)[0].split("=", 1)[0] for p in problems) == [
            "CACHE_REDIS_URL",
            "CACHE_TYPE",
        ]
        assert not any("hunter2" in p for p in problems)


class TestSeedKeys:
    """Without CACHE_LAYERS, the seed's keys build the tiers local, local_no_serializer, shared."""

    def test_the_seed_tiers(self) -> None:
        stack = CacheStack()
        stack.configure({"CACHE_TYPE": "SimpleCache"})
        assert [t.name for t in stack.tiers] == ["local", "local_no_serializer", "shared"]
        assert stack.local_cache.name == "local"
        assert stack.local_cache_no_serializer.name == "local_no_serializer"
        assert stack.shared_cache.name == "shared"
        assert type(stack.shared_cache.cache) is SimpleCache

    def test_the_default_shared_tier_is_a_null_cache(self) -> None:
        stack = CacheStack()
        stack.configure()
        assert type(stack.shared_cache.cache) is NullCache
        assert stack.tier("shared") is stack.shared_cache

    def test_a_seed_stack_reads_local_then_shared(self) -> None:
        stack = CacheStack()
        stack.configure({"CACHE_TYPE": "SimpleCache", "LOCALCACHE_DEFAULT_TIMEOUT": 30})
        calls: list[int] = []

        @cached_for(minutes=5, stack=stack)
        def f(x: int) -> int:
            calls.append(x)
            return x

        f(1)
        stack.local_cache.cache.clear()
        f(1)
        assert calls == [1]
        assert stack.local_cache.cap == 30

    def test_the_seed_dotted_path_selects_the_installed_backend(self, redis_url: str) -> None:
        stack = CacheStack()
        stack.configure(
            {
                "CACHE_TYPE": "shared.caching.backends.rediscache.RedisCacheNoExceptions",
                "CACHE_REDIS_URL": redis_url,
            }
        )
        assert type(stack.shared_cache.cache) is RedisCacheNoExceptions
        stack.set("k", "v")
        stack.local_cache.cache.clear()
        assert stack.get("k") == "v"

    def test_the_seed_dotted_path_reaches_the_suite_redis(
        self, redis_url: str, redis_server: RedisServer
    ) -> None:
        stack = CacheStack()
        stack.configure(
            {
                "CACHE_TYPE": "shared.caching.backends.rediscache.RedisCacheNoExceptions",
                "CACHE_REDIS_URL": redis_url,
            }
        )
        stack.set("k", "v")
        assert redis_server.client().dbsize() >= 1


class TestKeysOfBackendsNotInUse:
    """A backend key no tier takes: an error when given, a warning from the environment."""

    def test_given_to_configure_it_is_an_error_naming_the_key_and_the_tiers(self) -> None:
        problem = only_problem({"CACHE_TYPE": "SimpleCache", "CACHE_REDIS_PORT": 6380})
        assert problem.startswith("CACHE_REDIS_PORT=6380: an option of RedisCache")
        assert "no tier uses" in problem
        assert "local=SimpleCache" in problem
        assert "shared=SimpleCache" in problem

    def test_as_a_keyword_of_configure_it_is_an_error_too(self) -> None:
        with pytest.raises(ConfigurationError, match="CACHE_REDIS_PORT=6380"):
            CacheStack().configure(CACHE_TYPE="SimpleCache", CACHE_REDIS_PORT=6380)

    def test_from_the_environment_it_is_one_warning(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("CACHE_TYPE", "SimpleCache")
        monkeypatch.setenv("CACHE_REDIS_PORT", "6380")
        stack = CacheStack()
        with caplog.at_level(logging.WARNING, logger="stratacache"):
            stack.configure()
        (warning,) = assembly_warnings(caplog)
        assert "CACHE_REDIS_PORT='6380'" in warning
        assert "no tier uses" in warning
        assert "shared=SimpleCache" in warning
        assert type(stack.shared_cache.cache) is SimpleCache

    def test_a_leftover_redis_url_beside_null_cache_switches_shared_caching_off_with_a_warning(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("CACHE_TYPE", "NullCache")
        monkeypatch.setenv("CACHE_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
        stack = CacheStack()
        with caplog.at_level(logging.WARNING, logger="stratacache"):
            stack.configure()
        (warning,) = assembly_warnings(caplog)
        assert "CACHE_REDIS_URL=" in warning
        assert "shared=NullCache" in warning
        assert "hunter2" not in warning
        assert type(stack.shared_cache.cache) is NullCache
        assert stack.shared_cache.cache.set("k", 1) is True
        assert stack.shared_cache.cache.get("k") is None, "nothing is shared"

    def test_caching_off_with_a_leftover_redis_url_runs_the_function_every_time(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("CACHE_TYPE", "NullCache")
        monkeypatch.setenv("LOCALCACHE_TYPE", "NullCache")
        monkeypatch.setenv("CACHE_REDIS_URL", "redis://127.0.0.1:1/0")
        stack = CacheStack()
        with caplog.at_level(logging.WARNING, logger="stratacache"):
            stack.configure()
        assert len(assembly_warnings(caplog)) == 1
        calls: list[int] = []

        @cached_for(minutes=5, stack=stack)
        def f(x: int) -> int:
            calls.append(x)
            return x

        f(1)
        f(1)
        assert calls == [1, 1]

    def test_an_unknown_key_from_the_environment_is_a_warning_with_a_did_you_mean(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("CACHE_REDIS_PROT", "6380")
        with caplog.at_level(logging.WARNING, logger="stratacache"):
            CacheStack().configure()
        (warning,) = assembly_warnings(caplog)
        assert (
            "CACHE_REDIS_PROT: unknown configuration key; did you mean CACHE_REDIS_PORT?" in warning
        )


IMPORTS_NOTHING = """
import json, sys
from stratacache import CacheSettings
settings = CacheSettings()
print(json.dumps({
    "layers": [spec.type for spec in settings.cache_layers or ()],
    "loaded": sorted(
        m for m in sys.modules
        if m == "redis" or m.startswith(("redis.", "stratacache_plugins"))
    ),
}))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "environment",
    [
        {},
        {
            "CACHE_LAYERS": json.dumps([{"type": "SimpleCache"}, REDIS_SPEC]),
            "CACHE_REDIS_URL": "redis://127.0.0.1:1/0",
        },
        {"CACHE_TYPE": "RedisCacheAtomic", "CACHE_REDIS_URL": "redis://127.0.0.1:1/0"},
    ],
    ids=["empty", "layers-and-redis-url", "seed-redis"],
)
def test_settings_import_neither_redis_nor_a_plugin(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    result = run_python(IMPORTS_NOTHING, env=clean_env(**environment), cwd=tmp_path)
    report = json.loads(result.stdout)
    assert report["loaded"] == []
    if "CACHE_LAYERS" in environment:
        assert report["layers"] == ["SimpleCache", "RedisCache"]
