"""The options models of the first-party backends: keys, defaults, bounds and their messages."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from stratacache import Backend
from stratacache.options import BackendOptions, OptionsError, option_keys, validate_options
from stratacache_plugins.filesystem import FileSystemCache, FileSystemCacheOptions
from stratacache_plugins.null import NullCache
from stratacache_plugins.rediscache import RedisCache, RedisCacheAtomic, RedisCacheNoExceptions
from stratacache_plugins.rediscache.options import (
    RedisCacheAtomicOptions,
    RedisCacheNoExceptionsOptions,
    RedisCacheOptions,
)
from stratacache_plugins.simple import SimpleCache, SimpleCacheNoSerializer, SimpleCacheOptions
from tests.configuring import NUMERIC_OPTIONS

MODELS: dict[type[Backend], type[BackendOptions] | None] = {
    SimpleCache: SimpleCacheOptions,
    SimpleCacheNoSerializer: SimpleCacheOptions,
    NullCache: None,
    FileSystemCache: FileSystemCacheOptions,
    RedisCache: RedisCacheOptions,
    RedisCacheNoExceptions: RedisCacheNoExceptionsOptions,
    RedisCacheAtomic: RedisCacheAtomicOptions,
}
BACKENDS = [backend for backend, model in MODELS.items() if model is not None]
REDIS_KEYS = {
    "CACHE_REDIS_HOST": "host",
    "CACHE_REDIS_PORT": "port",
    "CACHE_REDIS_DB": "db",
    "CACHE_REDIS_PASSWORD": "password",
    "CACHE_REDIS_URL": "url",
    "CACHE_REDIS_CONNECT_TIMEOUT": "connect_timeout",
    "CACHE_REDIS_READ_TIMEOUT": "read_timeout",
    "CACHE_REDIS_USERNAME": "username",
    "CACHE_REDIS_CLUSTER": "cluster",
    "CACHE_REDIS_SENTINELS": "sentinels",
    "CACHE_REDIS_SENTINEL_MASTER": "sentinel_master",
    "CACHE_REDIS_SENTINEL_USERNAME": "sentinel_username",
    "CACHE_REDIS_SENTINEL_PASSWORD": "sentinel_password",
    "CACHE_REDIS_READ_FROM_REPLICAS": "read_from_replicas",
    "CACHE_INVALIDATION": "invalidation",
}


def ids(backend: type[Backend]) -> str:
    return backend.__name__


def constructor_defaults(backend: type[Backend]) -> dict[str, Any]:
    """Each named constructor parameter's default, through the ``**kwargs`` of subclasses."""
    defaults: dict[str, Any] = {}
    for klass in backend.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.default is not inspect.Parameter.empty:
                defaults.setdefault(param.name, param.default)
        if klass is Backend:
            break
    return defaults


def problems(model: type[BackendOptions], **values: Any) -> list[str]:
    names = {name: f"CACHE_{name.upper()}" for name in model.model_fields}
    with pytest.raises(OptionsError) as failure:
        validate_options(model, values, names)
    return failure.value.problems


@pytest.mark.parametrize("backend", list(MODELS), ids=ids)
def test_every_backend_points_at_its_model(backend: type[Backend]) -> None:
    assert backend.options_model is MODELS[backend]


@pytest.mark.parametrize("backend", BACKENDS, ids=ids)
def test_fields_are_constructor_arguments_with_the_same_defaults(backend: type[Backend]) -> None:
    model = backend.options_model
    assert model is not None
    arguments = model().arguments()
    assert backend.accepted_options(arguments) == arguments, "every field is a parameter"
    defaults = constructor_defaults(backend)
    assert {name: defaults[name] for name in arguments} == arguments


def test_the_flat_keys() -> None:
    assert option_keys(SimpleCacheOptions, "LOCALCACHE_") == {"LOCALCACHE_THRESHOLD": "threshold"}
    assert option_keys(FileSystemCacheOptions, "CACHE_") == {
        "CACHE_DIR": "cache_dir",
        "CACHE_THRESHOLD": "threshold",
    }, "mode has no key: only a tier spec sets it"
    assert option_keys(RedisCacheOptions, "CACHE_") == REDIS_KEYS
    assert option_keys(RedisCacheAtomicOptions, "CACHE_") == {
        **REDIS_KEYS,
        "CACHE_ATOMIC_LOCK_TIMEOUT": "lock_timeout",
        "CACHE_ATOMIC_WAIT": "lock_wait",
        "CACHE_ATOMIC_OUTAGE_AFTER": "outage_after",
        "CACHE_ATOMIC_RETRIES": "atomic_retries",
    }


NUMBERS = NUMERIC_OPTIONS


@pytest.mark.parametrize(("model", "name"), NUMBERS, ids=lambda x: getattr(x, "__name__", x))
def test_a_boolean_is_not_a_number(model: type[BackendOptions], name: str) -> None:
    (problem,) = problems(model, **{name: True})
    assert problem.startswith(f"CACHE_{name.upper()}=True: a boolean is not a number (expected ")


BAD_VALUES = [
    (SimpleCacheOptions, "threshold", -1, "greater than or equal to 0"),
    (SimpleCacheOptions, "threshold", "many", "valid integer"),
    (FileSystemCacheOptions, "threshold", -10, "greater than or equal to 0"),
    (FileSystemCacheOptions, "cache_dir", " ", "empty; give a directory path"),
    (FileSystemCacheOptions, "mode", 0o10000, "less than or equal to 4095"),
    (FileSystemCacheOptions, "mode", "0o9", "not an octal number"),
    (RedisCacheOptions, "host", "", "at least 1 character"),
    (RedisCacheOptions, "host", "cache.local:6380", "give the port apart"),
    (RedisCacheOptions, "host", "user@cache.local", "not a host name"),
    (RedisCacheOptions, "host", "http://cache.local", "unsupported URL scheme 'http'"),
    (RedisCacheOptions, "port", 0, "greater than or equal to 1"),
    (RedisCacheOptions, "port", 65536, "less than or equal to 65535"),
    (RedisCacheOptions, "db", -1, "greater than or equal to 0"),
    (RedisCacheOptions, "url", "localhost:6379", "not a URL (no scheme)"),
    (RedisCacheOptions, "url", "redis://localhost:99999/0", "malformed URL"),
    (RedisCacheOptions, "url", "unix://", "needs the socket's path"),
    (RedisCacheOptions, "url", "redis:///0", "no host name"),
    (RedisCacheOptions, "url", "redis://localhost/zero", "not a database number"),
    (RedisCacheOptions, "connect_timeout", 0, "greater than 0"),
    (RedisCacheOptions, "read_timeout", -1.5, "greater than 0"),
    (RedisCacheAtomicOptions, "lock_timeout", 0, "greater than 0"),
    (RedisCacheAtomicOptions, "lock_wait", "soon", "valid number"),
    (RedisCacheAtomicOptions, "atomic_retries", 0, "greater than or equal to 1"),
]


@pytest.mark.parametrize(
    ("model", "name", "value", "message"),
    BAD_VALUES,
    ids=[f"{m.__name__}.{n}={v!r}" for m, n, v, _ in BAD_VALUES],
)
def test_bounds_are_enforced_with_clear_messages(
    model: type[BackendOptions], name: str, value: Any, message: str
) -> None:
    (problem,) = problems(model, **{name: value})
    assert problem.startswith(f"CACHE_{name.upper()}={value!r}: "), problem
    assert message in problem
    assert problem.endswith(")"), "each problem says what is expected"


def test_a_tier_spec_path_names_the_problem() -> None:
    names = {"*": "CACHE_LAYERS[2]", "port": "CACHE_LAYERS[2].port"}
    with pytest.raises(OptionsError) as failure:
        validate_options(RedisCacheOptions, {"port": "http", "db": -1, "hots": "x"}, names)
    assert failure.value.problems == [
        "CACHE_LAYERS[2].hots: unknown option of RedisCacheOptions; did you mean 'host'?",
        "CACHE_LAYERS[2].port='http': Input should be a valid integer, unable to parse string"
        " as an integer (expected a port number from 1 to 65535)",
        "CACHE_LAYERS[2].db=-1: Input should be greater than or equal to 0"
        " (expected a database number >= 0)",
    ]


def test_an_existing_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    (problem,) = problems(FileSystemCacheOptions, cache_dir=str(tmp_path / "file"))
    assert "not a directory; give a directory path (created if missing)" in problem
    assert FileSystemCacheOptions(cache_dir=tmp_path / "new").cache_dir == str(tmp_path / "new")


def test_text_is_parsed_as_the_environment_gives_it() -> None:
    options = RedisCacheAtomicOptions(
        port="6380", db="2", connect_timeout="0.25", atomic_retries="3"
    )
    assert (options.port, options.db, options.connect_timeout, options.atomic_retries) == (
        6380,
        2,
        0.25,
        3,
    )
    assert FileSystemCacheOptions(mode="0o640", threshold="0").arguments() == {
        "cache_dir": None,
        "threshold": 0,
        "mode": 0o640,
    }


def test_secrets_are_masked_in_problems_and_revealed_to_the_constructor() -> None:
    options = RedisCacheOptions(password="s3cret")
    assert isinstance(options.password, SecretStr)
    assert "s3cret" not in repr(options)
    assert options.arguments()["password"] == "s3cret"
    (problem,) = problems(RedisCacheOptions, password=["s3cret"])
    assert "s3cret" not in problem
    (problem,) = problems(RedisCacheOptions, url="http://user:s3cret@cache.local/0")
    assert "s3cret" not in problem
    assert "unsupported URL scheme 'http'" in problem


def test_models_are_frozen() -> None:
    options = SimpleCacheOptions(threshold=10)
    with pytest.raises(ValidationError):
        options.threshold = 20  # type: ignore[misc]


PLUGINS = Path(__file__).resolve().parent.parent / "plugins" / "stratacache_plugins"


@pytest.mark.parametrize(
    "module",
    ["_options.py", "filesystem/options.py", "rediscache/options.py", "rediscache/topology.py"],
)
def test_options_modules_import_neither_drivers_nor_backends(module: str) -> None:
    tree = ast.parse((PLUGINS / module).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    allowed = {"__future__", "os", "types", "typing", "urllib.parse", "pydantic", "pydantic_core"}
    allowed |= {"json", "dataclasses", "stratacache.masking"}
    ours = {"stratacache.options", "stratacache_plugins._options"}
    assert imported - allowed <= ours | {"stratacache_plugins.rediscache.topology"}
