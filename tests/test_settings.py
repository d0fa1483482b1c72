"""The settings model: sources, defaults, validation errors that name the key and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stratacache import CacheSettings, CacheStack, ConfigurationError

from .conftest import clean_env, run_python


def problems(**values: object) -> list[str]:
    # Backend keys (CACHE_REDIS_*, CACHE_THRESHOLD...) and backend names are validated by the
    # assembly step, after the pure settings model: configuring a stack runs both.
    with pytest.raises(ConfigurationError) as info:
        CacheStack().configure(values)
    return info.value.problems


def test_defaults() -> None:
    settings = CacheSettings()
    assert settings.cache_type == "NullCache"
    assert settings.cache_default_timeout == 300
    assert settings.localcache_type == "SimpleCache"
    assert settings.cache_layers is None
    assert settings.backend_keys == {}
    assert settings.cache_serializer == "pickle"
    assert settings.cache_options == {}


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TYPE", "FileSystemCache")
    monkeypatch.setenv("CACHE_DIR", "/var/cache/app")
    monkeypatch.setenv("LOCALCACHE_THRESHOLD", "1000")
    monkeypatch.setenv("cache_options", '{"mode": 384}')
    settings = CacheSettings()
    assert settings.cache_type == "FileSystemCache"
    # Backend keys are kept as given; their backends' models validate them at assembly.
    assert settings.backend_keys == {"CACHE_DIR": "/var/cache/app", "LOCALCACHE_THRESHOLD": "1000"}
    assert settings.cache_options == {"mode": 384}
    assert settings.sources()["CACHE_TYPE"] == "environment"
    assert settings.sources()["CACHE_DIR"] == "environment"
    assert settings.sources()["CACHE_DEFAULT_TIMEOUT"] == "default"


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CACHE_DEFAULT_TIMEOUT=42\nDATABASE_URL=ignored\n")
    settings = CacheSettings()
    assert settings.cache_default_timeout == 42
    assert settings.sources()["CACHE_DEFAULT_TIMEOUT"] == ".env"


def test_keyword_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_DEFAULT_TIMEOUT", "10")
    by_key = CacheSettings(CACHE_DEFAULT_TIMEOUT=20)
    by_name = CacheSettings(cache_default_timeout=30)
    assert (by_key.cache_default_timeout, by_name.cache_default_timeout) == (20, 30)


def test_mapping_is_the_whole_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_DEFAULT_TIMEOUT", "10")
    settings = CacheSettings.from_mapping(
        {"CACHE_TYPE": "SimpleCache", "SECRET_KEY": "flask's own key", "DEBUG": True}
    )
    assert settings.cache_type == "SimpleCache"
    assert settings.cache_default_timeout == 300
    assert settings.sources()["CACHE_TYPE"] == "mapping"
    assert settings.sources()["CACHE_DEFAULT_TIMEOUT"] == "default"


def test_settings_are_immutable() -> None:
    settings = CacheSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.cache_type = "SimpleCache"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("CACHE_DEFAULT_TIMEOUT", -5, "greater than or equal to 0"),
        ("CACHE_DEFAULT_TIMEOUT", "soon", "valid integer"),
        ("LOCALCACHE_DEFAULT_TIMEOUT", -1, "seconds >= 0"),
        ("LOCALCACHE_THRESHOLD", "many", "valid integer"),
        ("LOCALCACHE_THRESHOLD", -1, "0 = no limit"),
        ("CACHE_THRESHOLD", -1, "0 = no limit"),
        ("CACHE_TYPE", "RedisCash", "Installed backends:"),
        ("CACHE_TYPE", "no_such_module.Cache", "cannot import module 'no_such_module'"),
        ("CACHE_TYPE", "json:dumps", "not a stratacache backend: it is not a class"),
        ("CACHE_TYPE", "collections:OrderedDict", "does not derive from stratacache.Backend"),
        ("CACHE_TYPE", "stratacache:NoSuchThing", "has no attribute 'NoSuchThing'"),
        ("LOCALCACHE_TYPE", "FileSystemCache", "not an in-process cache"),
        ("LOCALCACHE_NO_SERIALIZER_TYPE", "SimpleCache", "by reference"),
        ("CACHE_SERIALIZER", "pikle", "did you mean 'pickle'"),
        ("CACHE_OPTIONS", "{not json", "not valid JSON"),
        ("CACHE_OPTIONS", "[1, 2]", "must be a JSON object"),
        ("CACHE_REDIS_PORT", 70000, "1 to 65535"),
        ("CACHE_REDIS_DB", -1, "database number >= 0"),
        ("CACHE_REDIS_URL", "http://localhost", "unsupported URL scheme 'http'"),
        ("CACHE_REDIS_URL", "redis://:notaport", "malformed URL"),
        ("CACHE_REDIS_URL", "redis://", "no host name"),
        ("CACHE_REDIS_HOST", "ftp://host", "unsupported URL scheme"),
        ("CACHE_REDIS_HOST", "my host", "not a host name"),
    ],
)
def test_each_bad_value_names_its_key(key: str, value: object, expected: str) -> None:
    # A backend's key is validated by its backend's model: select a backend that takes it.
    owner = {"CACHE_REDIS": "RedisCache", "CACHE_THRESHOLD": "FileSystemCache"}
    backend = next((b for prefix, b in owner.items() if key.startswith(prefix)), None)
    extra = {"CACHE_TYPE": backend} if backend else {}
    (problem,) = problems(**{key: value}, **extra)
    assert problem.startswith(f"{key}=")
    assert repr(value) in problem or repr(str(value)) in problem
    assert expected in problem


def test_unknown_backend_suggests_the_closest_name() -> None:
    (problem,) = problems(CACHE_TYPE="SimpleCach")
    assert "Did you mean 'SimpleCache'?" in problem
    assert "Installed backends: FileSystemCache, NullCache, RedisCache," in problem


def test_unknown_keys_in_a_mapping_suggest_the_closest_key() -> None:
    found = problems(CACHE_DEFAULT_TIMOUT=5, LOCALCACHE_THRESHHOLD=3, CACHE_ZZZZZZ=1)
    assert (
        found[0]
        == "CACHE_DEFAULT_TIMOUT: unknown configuration key; did you mean CACHE_DEFAULT_TIMEOUT?"
    )
    assert "did you mean LOCALCACHE_THRESHOLD?" in found[1]
    assert "known keys: CACHE_LAYERS, CACHE_TYPE" in found[2]


def test_unknown_keyword_argument() -> None:
    with pytest.raises(ConfigurationError, match="did you mean CACHE_KEY_PREFIX"):
        CacheStack().configure(CACHE_KEY_PREFX="app_")


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        CACHE_TYPE="Nope", CACHE_DEFAULT_TIMEOUT=-1, LOCALCACHE_THRESHOLD="x", CACHE_TIMEOUT=3
    )
    # The core model's problems come first, then the assembly's (backends and their keys).
    assert [p.split("=")[0].split(":")[0] for p in found] == [
        "CACHE_DEFAULT_TIMEOUT",
        "LOCALCACHE_THRESHOLD",
        "CACHE_TYPE",
        "CACHE_TIMEOUT",
    ]


def test_secrets_are_masked_everywhere() -> None:
    settings = CacheSettings.from_mapping({"CACHE_REDIS_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.as_mapping())
    assert settings.as_mapping(reveal_secrets=True)["CACHE_REDIS_PASSWORD"] == "hunter2"
    with pytest.raises(ConfigurationError) as info:
        CacheStack().configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PASSWORD": ["hunter2"]})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://u:pw@h/0", "redis://u:**********@h/0"),
        ("redis://h/0?password=p@ss&db=1", "redis://h/0?password=**********&db=1"),
        ("redis://:p@ss@h/0?ssl_password=x", "redis://:**********@h/0?ssl_password=**********"),
        ("unix:///r.sock?db=0&Auth_Token=t#f", "unix:///r.sock?db=0&Auth_Token=**********#f"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url_hides_credentials_and_query_secrets(url: str, shown: str) -> None:
    from stratacache.masking import mask_url

    assert mask_url(url) == shown


def test_options_named_as_secrets_are_masked() -> None:
    options = {"ssl_password": "pa55-word", "auth_token": "t0ken", "url": "redis://:pw@h/0"}
    settings = CacheSettings.from_mapping({"CACHE_OPTIONS": options})
    for shown in (repr(settings), json.dumps(settings.as_mapping())):
        for secret in ("pa55-word", "t0ken", ":pw@"):
            assert secret not in shown
    assert settings.as_mapping(reveal_secrets=True)["CACHE_OPTIONS"] == options


def test_keys_cover_every_field() -> None:
    keys = CacheSettings.keys()
    assert set(keys.values()) == set(CacheSettings.model_fields)
    assert all(k.startswith(("CACHE_", "LOCALCACHE_")) for k in keys)


@pytest.mark.subprocess
def test_environment_configuration_in_a_fresh_process(tmp_path: Path) -> None:
    env = clean_env(
        CACHE_TYPE="FileSystemCache",
        CACHE_DIR=str(tmp_path / "shared"),
        LOCALCACHE_TYPE="SimpleCache",
        LOCALCACHE_THRESHOLD="1000",
        CACHE_DEFAULT_TIMEOUT="60",
    )
    code = """
import json
from stratacache import cache, cached_for

@cached_for(minutes=5)
def double(x):
    return x * 2

double(21)
print(json.dumps({
    "shared": type(cache.shared_cache.cache).__name__,
    "local": type(cache.local_cache.cache).__name__,
    "threshold": cache.local_cache.config.options["threshold"],
    "dir": cache.shared_cache.config.options["cache_dir"],
    "timeout": cache.settings.cache_default_timeout,
}))
"""
    out = json.loads(run_python(code, env=env, cwd=tmp_path).stdout)
    assert out["shared"] == "FileSystemCache"
    assert out["local"] == "SimpleCache"
    assert out["threshold"] == 1000
    assert out["dir"] == str(tmp_path / "shared")
    assert out["timeout"] == 60
    assert list((tmp_path / "shared").iterdir()), "the computed value was written to CACHE_DIR"


@pytest.mark.subprocess
def test_invalid_environment_fails_at_first_use_with_every_problem(tmp_path: Path) -> None:
    env = clean_env(CACHE_TYPE="SimpleCach", LOCALCACHE_THRESHOLD="lots")
    code = """
from stratacache import ConfigurationError, cached_for

@cached_for(minutes=1)
def f():
    return 1

try:
    f()
except ConfigurationError as exc:
    print(exc)
"""
    out = run_python(code, env=env, cwd=tmp_path).stdout
    assert "2 problems" in out
    assert "CACHE_TYPE='SimpleCach'" in out
    assert "LOCALCACHE_THRESHOLD='lots'" in out
