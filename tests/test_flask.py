"""The Flask integration: a real Flask app, its test client, and Flask-Caching side by side."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask
import flask_caching
import pytest
from flask import Flask, abort, request

import stratacache
from stratacache import CacheStack, ConfigurationError
from stratacache.flask import (
    FLASK_CACHING_BACKENDS,
    IGNORED_KEYS,
    UNSUPPORTED_KEYS,
    Cache,
    init_app,
    settings_from_config,
)

from .conftest import ROOT, run_python


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


@pytest.fixture
def app() -> Flask:
    return make_app(CACHE_TYPE="SimpleCache", SECRET_KEY="flask's own", DEBUG=False)


@pytest.fixture
def cache(app: Flask) -> Cache:
    return Cache(app)


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


# -- importing ---------------------------------------------------------------------------


@pytest.mark.subprocess
def test_importing_stratacache_never_imports_flask() -> None:
    code = """
import sys
import stratacache

stratacache.configure({"CACHE_TYPE": "SimpleCache"})

@stratacache.cached_for(minutes=1)
def double(x):
    return 2 * x

double(1)
loaded = sorted(
    m for m in sys.modules
    if m.partition(".")[0] in ("flask", "werkzeug", "flask_caching") or m == "stratacache.flask"
)
assert not loaded, loaded
"""
    run_python(code)


@pytest.mark.subprocess
def test_without_flask_the_import_names_the_extra() -> None:
    code = """
import sys
sys.modules["flask"] = None  # what Python does for a module that is not installed
try:
    import stratacache.flask
except ImportError as exc:
    print(exc)
else:
    raise SystemExit("stratacache.flask imported without Flask")
"""
    out = run_python(code).stdout
    assert "pip install 'stratacache[flask]'" in out


# -- configuration -----------------------------------------------------------------------


def test_init_app_reads_the_cache_keys_of_app_config() -> None:
    app = make_app(
        CACHE_TYPE="SimpleCache",
        CACHE_DEFAULT_TIMEOUT=600,
        CACHE_KEY_PREFIX="app:",
        LOCALCACHE_THRESHOLD=42,
        SECRET_KEY="flask's own",
        DEBUG=True,
    )

    cache = init_app(app)

    assert app.extensions["stratacache"] is cache
    settings = stratacache.cache.settings
    assert settings is cache.settings
    assert (settings.cache_type, settings.cache_default_timeout) == ("SimpleCache", 600)
    assert settings.cache_key_prefix == "app:"
    assert stratacache.cache.local_cache.config.options["threshold"] == 42  # SimpleCache's key
    assert settings.sources()["CACHE_TYPE"] == "mapping"
    assert "CACHE_THRESHOLD" not in settings.sources()  # not given: its backend's default
    assert cache.cache is stratacache.cache


def test_app_config_is_the_whole_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_DEFAULT_TIMEOUT", "10")
    cache = Cache(make_app(CACHE_TYPE="SimpleCache"))
    assert cache.settings is not None
    assert cache.settings.cache_default_timeout == 300


def test_init_app_later_and_config_precedence() -> None:
    app = make_app(CACHE_TYPE="SimpleCache", CACHE_DEFAULT_TIMEOUT=1, CACHE_THRESHOLD=7)
    cache = Cache(config={"CACHE_DEFAULT_TIMEOUT": 2, "CACHE_KEY_PREFIX": "ctor:"})
    assert cache.settings is None
    assert "stratacache" not in app.extensions

    cache.init_app(app, config={"CACHE_KEY_PREFIX": "init:"})

    settings = stratacache.cache.settings
    assert settings.cache_default_timeout == 2
    assert stratacache.cache.shared_cache.config.options["threshold"] == 7
    assert settings.cache_key_prefix == "init:"
    assert app.extensions["stratacache"] is cache


def test_a_cache_can_use_its_own_stack(app: Flask) -> None:
    stack = CacheStack()
    cache = Cache(app, stack=stack)
    cache.set("k", "v")
    assert stack.get("k") == "v"
    assert stratacache.cache._state is None  # the process-wide stack was not configured


@pytest.mark.parametrize("key", sorted(UNSUPPORTED_KEYS))
def test_an_unsupported_flask_caching_key_is_an_error_with_advice(key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Cache(make_app(CACHE_TYPE="SimpleCache", **{key: "anything"}))

    assert caught.value.problems == [
        f"{key}='anything': a Flask-Caching key with no stratacache counterpart;"
        f" {UNSUPPORTED_KEYS[key]}"
    ]


@pytest.mark.parametrize("key", sorted(UNSUPPORTED_KEYS))
@pytest.mark.parametrize("empty", [None, False, "", []])
def test_an_unsupported_key_left_empty_asks_for_nothing(key: str, empty: object) -> None:
    cache = Cache(make_app(CACHE_TYPE="SimpleCache", **{key: empty}))
    assert cache.cache.settings.cache_type == "SimpleCache"


@pytest.mark.parametrize("key", sorted(IGNORED_KEYS))
def test_a_key_that_changes_nothing_is_ignored_and_logged(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="stratacache.flask"):
        cache = Cache(make_app(CACHE_TYPE="SimpleCache", **{key: True}))
    assert cache.cache.settings.cache_type == "SimpleCache"
    assert f"{key} is ignored: {IGNORED_KEYS[key]}" in caplog.text


def test_flask_caching_defaults_switch_unchanged() -> None:
    """The keys Flask-Caching's init_app fills in with defaults start stratacache as they are."""
    app = make_app(CACHE_TYPE="SimpleCache")
    flask_caching.Cache(app)
    assert Cache(app).cache.settings.cache_type == "SimpleCache"


def test_every_problem_is_reported_at_once() -> None:
    app = make_app(
        CACHE_TYPE="MemcachedCache",
        CACHE_MEMCACHED_SERVERS=["127.0.0.1:11211"],
        CACHE_NO_NULL_WARNING=True,
        CACHE_TIMEOUT=5,
        CACHE_THRESHOLD=-1,
        DEBUG=True,
    )
    with pytest.raises(ConfigurationError) as caught:
        init_app(app)

    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith("CACHE_MEMCACHED_SERVERS=['127.0.0.1:11211']: a Flask-Caching")
    assert problems[1].startswith(
        "CACHE_TYPE='MemcachedCache': Flask-Caching's MemcachedCache has no stratacache"
        " counterpart installed; choose an installed backend ("
    )
    assert "RedisCache" in problems[1]
    assert "CACHE_TIMEOUT: unknown configuration key; did you mean CACHE_DEFAULT_TIMEOUT?" in (
        problems
    )
    assert any(p.startswith("CACHE_THRESHOLD=-1:") for p in problems)
    assert "stratacache" not in app.extensions


@pytest.mark.parametrize(
    ("given", "selected"),
    [
        ("RedisCache", "RedisCache"),
        ("flask_caching.backends.RedisCache", "RedisCache"),
        ("flask_caching.backends.rediscache.RedisCache", "RedisCache"),
        ("flask_caching.backends.SimpleCache", "SimpleCache"),
        ("flask_caching.backends.filesystemcache:FileSystemCache", "FileSystemCache"),
        ("flask_caching.backends.NullCache", "NullCache"),
        ("RedisCacheNoExceptions", "RedisCacheNoExceptions"),
    ],
)
def test_flask_caching_backend_names_select_ours(given: str, selected: str) -> None:
    settings = settings_from_config({"CACHE_TYPE": given})
    assert settings.cache_type == selected


@pytest.mark.parametrize(
    "given",
    [
        "flask_caching.contrib.uwsgicache.UWSGICache",
        "flask_caching.backends.base.BaseCache",
    ],
)
def test_flask_caching_backends_without_a_counterpart_are_errors(given: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_from_config({"CACHE_TYPE": given})
    [problem] = caught.value.problems
    assert problem.startswith(f"CACHE_TYPE={given!r}: ")
    assert "has no stratacache counterpart installed" in problem
    # The fix itself, and the docs page by its title (a wheel user has no docs/ directory).
    assert "a stratacache.Backend subclass declared in the stratacache.backends" in problem
    assert 'page "Third-party plugins"' in problem


def test_flask_cachings_sentinel_type_is_redis_cache_with_its_defaults() -> None:
    settings = settings_from_config({"CACHE_TYPE": "RedisSentinelCache"})
    assert settings.cache_type == "RedisCache"
    stack = CacheStack()
    stack.configure(settings)  # connects to nothing yet
    tier = stack.shared_cache.cache
    assert tier.topology.kind == "sentinel"
    assert tier.topology.master == "mymaster"
    assert [str(node) for node in tier.topology.nodes] == ["127.0.0.1:26379"]


def test_flask_cachings_cluster_type_takes_its_nodes_and_refuses_a_url_beside() -> None:
    config = {"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_CLUSTER": "10.0.0.1:7000"}
    settings = settings_from_config(config)
    assert settings.cache_type == "RedisCache"
    with pytest.raises(ConfigurationError, match=r"CACHE_REDIS_CLUSTER=.*CACHE_REDIS_URL"):
        settings_from_config({**config, "CACHE_REDIS_URL": "redis://10.0.0.2:6379/0"})


def test_a_backend_that_is_not_a_name_is_explained_by_the_settings_model() -> None:
    with pytest.raises(ConfigurationError, match=r"CACHE_TYPE=5: Input should be a valid string"):
        settings_from_config({"CACHE_TYPE": 5})


def test_a_misspelt_backend_is_explained_by_the_settings_model() -> None:
    with pytest.raises(ConfigurationError, match="Did you mean 'RedisCache'"):
        settings_from_config({"CACHE_TYPE": "RedisCach"})


SAME_KEYS = {
    "CACHE_TYPE",
    "CACHE_DEFAULT_TIMEOUT",
    "CACHE_KEY_PREFIX",
    "CACHE_REDIS_HOST",
    "CACHE_REDIS_PORT",
    "CACHE_REDIS_PASSWORD",
    "CACHE_REDIS_DB",
    "CACHE_REDIS_URL",
    "CACHE_DIR",
    "CACHE_THRESHOLD",
    "CACHE_OPTIONS",
    "CACHE_SERIALIZER",
    "CACHE_REDIS_CLUSTER",
    "CACHE_REDIS_SENTINELS",
    "CACHE_REDIS_SENTINEL_MASTER",
    "CACHE_REDIS_SENTINEL_PASSWORD",
}
"""The Flask-Caching keys stratacache reads under the same name."""


def flask_caching_keys() -> set[str]:
    """Every configuration key the installed Flask-Caching reads."""
    package = Path(flask_caching.__file__).parent
    return {
        key
        for source in package.rglob("*.py")
        for key in re.findall(r"[\"'](CACHE_[A-Z_]+)[\"']", source.read_text())
    }


def test_every_flask_caching_key_is_read_or_refused() -> None:
    keys = flask_caching_keys()
    assert "CACHE_REDIS_URL" in keys  # the scan works
    assert keys - SAME_KEYS - set(UNSUPPORTED_KEYS) - set(IGNORED_KEYS) == set()
    from stratacache.reference import option_reference

    ours = set(stratacache.CacheSettings.keys()) | set(option_reference())
    assert SAME_KEYS - ours == set()
    assert (set(UNSUPPORTED_KEYS) | set(IGNORED_KEYS)) & ours == set()


def test_every_flask_caching_backend_is_known() -> None:
    from flask_caching import backends

    assert set(backends.__all__) - {"BaseCache"} <= FLASK_CACHING_BACKENDS


def test_the_flask_page_documents_every_flask_caching_key_and_backend() -> None:
    page = (ROOT / "docs" / "flask.md").read_text()
    documented = set(re.findall(r"`([A-Za-z_.]+)`", page))
    assert (
        SAME_KEYS | set(UNSUPPORTED_KEYS) | set(IGNORED_KEYS) | flask_caching_keys()
    ) - documented == set()
    assert FLASK_CACHING_BACKENDS - documented == set()


# -- memoize -----------------------------------------------------------------------------


def test_memoize_caches_by_arguments(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize(timeout=60)
    def square(x: int) -> int:
        calls[f"square({x})"] += 1
        return x * x

    assert [square(3), square(3), square(4), square(x=3)] == [9, 9, 16, 9]
    assert calls == {"square(3)": 1, "square(4)": 1}
    assert stratacache.cache.local_cache.cache.has(square.cache_key(3))


def test_memoize_caches_none(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def nothing() -> None:
        calls["nothing"] += 1

    assert [nothing(), nothing()] == [None, None]
    assert calls["nothing"] == 1


def test_delete_memoized_one_call_or_every_call(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize(timeout=timedelta(minutes=1))
    def add(a: int, b: int = 1) -> int:
        calls[f"add({a}, {b})"] += 1
        return a + b

    def call_each() -> list[int]:
        return [add(1), add(2), add(1, 5)]

    call_each()
    cache.delete_memoized(add, 1)  # the entry of add(1) (b defaults to 1)
    assert call_each() == [2, 3, 6]
    assert calls == {"add(1, 1)": 2, "add(2, 1)": 1, "add(1, 5)": 1}

    cache.delete_memoized(add)
    call_each()
    assert calls == {"add(1, 1)": 3, "add(2, 1)": 2, "add(1, 5)": 2}


def test_delete_memoized_of_a_method(cache: Cache, calls: Counter[str]) -> None:
    class Account:
        def __init__(self, number: int) -> None:
            self.number = number

        def __cache_key__(self) -> str:
            return str(self.number)

        @cache.memoize(timeout=60)
        def balance(self) -> int:
            calls[f"balance {self.number}"] += 1
            return self.number * 100

    first, second = Account(1), Account(2)
    assert [first.balance(), second.balance()] == [100, 200]
    cache.delete_memoized(Account.balance, first)
    assert [first.balance(), second.balance()] == [100, 200]
    assert calls == {"balance 1": 2, "balance 2": 1}


def test_delete_memoized_of_a_plain_function_is_an_error(cache: Cache) -> None:
    with pytest.raises(TypeError, match="is not memoized"):
        cache.delete_memoized(len)


@pytest.mark.parametrize(
    ("timeout", "error", "message"),
    [
        (0, ValueError, "never expire"),
        (-1, ValueError, "must not be negative"),
        ("60", TypeError, "give seconds or a timedelta"),
        (True, TypeError, "give seconds or a timedelta"),
    ],
)
def test_memoize_refuses_bad_timeouts(
    cache: Cache, timeout: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        cache.memoize(timeout=timeout)


def test_memoize_needs_parentheses(cache: Cache) -> None:
    def f() -> int:
        return 1

    with pytest.raises(TypeError, match=r"write @cache.memoize\(\) with parentheses"):
        cache.memoize(f)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decorator", "option"),
    [
        ("memoize", "make_name"),
        ("memoize", "args_to_ignore"),
        ("cached", "forced_update"),
        ("cached", "source_check"),
        ("cached", "make_cache_key"),
    ],
)
def test_unsupported_decorator_options_are_refused(
    cache: Cache, decorator: str, option: str
) -> None:
    with pytest.raises(TypeError, match=f"does not support Flask-Caching's {option}"):
        getattr(cache, decorator)(timeout=5, **{option: None})


# -- cached views ------------------------------------------------------------------------


def counting_view(app: Flask, cache: Cache, calls: Counter[str], **options: Any) -> Any:
    @app.route("/items", methods=["GET", "POST"])
    @cache.cached(timeout=50, **options)
    def items() -> Any:
        calls["items"] += 1
        return flask.jsonify(call=calls["items"], args=sorted(request.args.items(multi=True)))

    return items


def test_a_view_is_computed_once(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    counting_view(app, cache, calls)
    client = app.test_client()

    bodies = [client.get("/items").json for _ in range(3)]

    assert bodies == [{"call": 1, "args": []}] * 3
    assert calls["items"] == 1
    assert stratacache.cache.local_cache.cache.has("view//items")
    assert stratacache.cache.shared_cache.cache.has("view//items")


def test_the_query_string_is_part_of_the_key_in_any_order(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    counting_view(app, cache, calls)
    client = app.test_client()

    a = client.get("/items?q=a&page=2").json
    b = client.get("/items?q=b&page=2").json
    a_again = client.get("/items?page=2&q=a").json

    assert a["args"] == [["page", "2"], ["q", "a"]]
    assert b["args"] == [["page", "2"], ["q", "b"]]
    assert a_again == a
    assert calls["items"] == 2
    assert stratacache.cache.get("view//items?page=2&q=a") is not None


def test_query_string_false_keys_on_the_path_only(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    counting_view(app, cache, calls, query_string=False)  # Flask-Caching's default
    client = app.test_client()
    assert client.get("/items?q=a").json == client.get("/items?q=b").json
    assert calls["items"] == 1


def test_only_get_and_head_are_cached(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    counting_view(app, cache, calls)
    client = app.test_client()

    posted = [client.post("/items").json["call"] for _ in range(2)]
    client.get("/items")
    head = client.head("/items")

    assert posted == [1, 2]
    assert head.status_code == 200
    assert calls["items"] == 3


def test_unless_bypasses_the_cache(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    counting_view(app, cache, calls, unless=lambda: request.headers.get("X-Fresh") == "1")
    client = app.test_client()
    client.get("/items")
    fresh = client.get("/items", headers={"X-Fresh": "1"}).json
    cached = client.get("/items").json
    assert (fresh["call"], cached["call"]) == (2, 1)


def test_unless_may_take_the_view_and_its_arguments(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def unless(view: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        seen.append((view.__name__, kwargs))
        return kwargs["name"] == "live"

    @app.route("/hello/<name>")
    @cache.cached(unless=unless)
    def hello(name: str) -> str:
        calls[name] += 1
        return f"hello {name}"

    client = app.test_client()
    for name in ("ann", "ann", "live", "live"):
        client.get(f"/hello/{name}")
    assert calls == {"ann": 1, "live": 2}
    assert seen[0] == ("hello", {"name": "ann"})


def test_unless_may_be_a_builtin_without_a_signature(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    counting_view(app, cache, calls, unless=bool)  # bool() is False: never bypass
    client = app.test_client()
    assert [client.get("/items").json["call"] for _ in range(2)] == [1, 1]


def test_response_filter_decides_what_is_cached(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/status")
    @cache.cached(response_filter=lambda rv: rv[1] == 200)
    def status() -> tuple[str, int]:
        calls["status"] += 1
        return ("busy", 503) if calls["status"] == 1 else ("ok", 200)

    client = app.test_client()
    codes = [client.get("/status").status_code for _ in range(3)]
    assert codes == [503, 200, 200]
    assert calls["status"] == 2


def test_an_aborted_request_is_never_cached(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/flaky")
    @cache.cached()
    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            abort(404)
        return "found"

    client = app.test_client()
    codes = [client.get("/flaky").status_code for _ in range(3)]
    assert codes == [404, 200, 200]
    assert calls["flaky"] == 2


def test_a_streamed_response_is_served_uncached_with_one_warning(
    app: Flask, cache: Cache, calls: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    @app.route("/stream")
    @cache.cached()
    def stream() -> flask.Response:
        calls["stream"] += 1

        def chunks() -> Iterator[str]:
            yield "a"
            yield "b"

        return flask.Response(chunks())

    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="stratacache.flask"):
        bodies = [client.get("/stream").data for _ in range(2)]

    assert bodies == [b"ab", b"ab"]
    assert calls["stream"] == 2
    warnings = [r for r in caplog.records if r.name == "stratacache.flask"]
    assert len(warnings) == 1
    assert "stream: response not cached, it cannot be serialized" in warnings[0].getMessage()


def test_make_cache_key_and_delete_cached(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    items = counting_view(app, cache, calls)
    client = app.test_client()
    client.get("/items?b=2&a=1")
    client.get("/items")

    key = "view//items?a=1&b=2"
    assert items.make_cache_key(path="/items", query_args="b=2&a=1") == key
    assert items.make_cache_key(path="/items", query_args={"a": 1, "b": 2}) == key
    assert items.make_cache_key(path="/items", query_args=[("b", "2"), ("a", "1")]) == key
    assert items.make_cache_key(path="/items") == "view//items"

    assert cache.delete_cached(items, "/items", {"a": 1, "b": 2}) is True
    client.get("/items?a=1&b=2")
    client.get("/items")
    assert calls["items"] == 3


def test_a_cached_function_outside_a_request(cache: Cache, calls: Counter[str]) -> None:
    @cache.cached(timeout=60, key_prefix="all_comments")
    def comments() -> list[str]:
        calls["comments"] += 1
        return ["first"]

    assert comments() == comments() == ["first"]
    assert calls["comments"] == 1
    assert cache.get("all_comments") == ["first"]
    assert comments.uncached() == ["first"]


def test_a_callable_key_prefix_is_the_whole_key(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/user")
    @cache.cached(key_prefix=lambda: f"user/{request.headers['X-User']}")
    def user() -> str:
        calls[request.headers["X-User"]] += 1
        return request.headers["X-User"]

    client = app.test_client()
    for who in ("ann", "bob", "ann"):
        assert client.get("/user?x=1", headers={"X-User": who}).text == who
    assert calls == {"ann": 1, "bob": 1}
    assert cache.has("user/ann")


def test_a_path_key_outside_a_request_needs_a_path(cache: Cache) -> None:
    @cache.cached()
    def view() -> str:
        return "x"

    with pytest.raises(RuntimeError, match="names the request path"):
        view()
    assert view.make_cache_key(path="/x") == "view//x"


def test_long_keys_are_bounded(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    items = counting_view(app, cache, calls)
    key = items.make_cache_key(path="/items", query_args={"q": "x" * 500})
    assert len(key) < 200
    assert re.fullmatch(r"view//items\?q=x+\.\.\.#[0-9a-f]{64}", key)


def test_views_need_parentheses(cache: Cache) -> None:
    def view() -> str:
        return "x"

    with pytest.raises(TypeError, match=r"write @cache.cached\(\) with parentheses"):
        cache.cached(view)  # type: ignore[arg-type]


def test_app_extensions_cache_maps_the_cache_to_its_backend(app: Flask, cache: Cache) -> None:
    # Flask-Caching's app.extensions["cache"][cache] is the backend: here the shared layer's.
    backend = app.extensions["cache"][cache]
    assert backend is cache.stack.shared_cache.cache
    assert type(backend).__name__ == "SimpleCache"
    assert app.extensions["stratacache"] is cache


def test_memoized_function_deletes_its_entries_itself(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize(60)
    def double(x: int) -> int:
        calls["double"] += 1
        return 2 * x

    assert double(2) == double(2) == 4
    double.delete_memoized(2)  # type: ignore[attr-defined]
    assert double(2) == 4
    assert calls["double"] == 2
    double.delete_memoized()  # type: ignore[attr-defined]
    assert double(2) == 4
    assert calls["double"] == 3


# -- the cachelib interface --------------------------------------------------------------


def test_get_set_has_delete_clear(cache: Cache) -> None:
    assert cache.set("a", 1) is True
    assert cache.set("none", None, timeout=60) is True
    assert (cache.get("a"), cache.get("none"), cache.get("missing")) == (1, None, None)
    assert (cache.has("none"), cache.has("missing")) == (True, False)

    assert cache.set_many({"b": 2, "c": 3}) == ["b", "c"]
    assert cache.get_many("a", "b", "c", "missing") == [1, 2, 3, None]
    assert cache.delete_many("b", "missing") == ["b"]
    assert cache.delete("a") is True
    assert cache.delete("a") is False

    assert cache.clear() is True
    assert cache.get_many("c", "none") == [None, None]


# -- two instances on one Redis ----------------------------------------------------------


def test_a_view_computed_by_one_instance_serves_another(redis_url: str) -> None:
    calls: Counter[str] = Counter()
    clients, stacks = [], []
    for _ in range(2):
        app = make_app(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_url, CACHE_KEY_PREFIX="t:")
        stack = CacheStack()
        cache = Cache(app, stack=stack)

        @app.route("/report")
        @cache.cached(timeout=60)
        def report() -> str:
            calls["report"] += 1
            return "report"

        clients.append(app.test_client())
        stacks.append(stack)

    assert clients[0].get("/report").text == "report"
    # The write's invalidation reaches the second instance first: a drop arriving during
    # its read would, rightly, keep the value it read out of its local tier.
    receiver = stacks[1]._layers().coherence
    deadline = time.monotonic() + 5
    while receiver is not None and receiver.received < 1:
        assert time.monotonic() < deadline, "the first instance's write never reached it"
        time.sleep(0.001)
    assert clients[1].get("/report").text == "report"
    assert calls["report"] == 1
    assert stacks[1].local_cache.cache.has("view//report")  # the shared hit filled it

    Cache(make_app(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_url, CACHE_KEY_PREFIX="t:"))
    assert stratacache.cache.shared_cache.cache.has("view//report")


# -- the same application code on Flask-Caching and on stratacache -----------------------


@pytest.mark.parametrize(
    "cache_class", [flask_caching.Cache, Cache], ids=["flask_caching", "stratacache"]
)
def test_changing_one_import(cache_class: Any) -> None:
    app = make_app(CACHE_TYPE="SimpleCache", CACHE_DEFAULT_TIMEOUT=300)
    cache = cache_class()
    cache.init_app(app)
    calls: Counter[str] = Counter()

    @app.route("/now")
    @cache.cached(timeout=50)
    def now() -> str:
        calls["now"] += 1
        return f"computed {calls['now']} time(s)"

    @cache.memoize(timeout=60)
    def square(x: int) -> int:
        calls[f"square({x})"] += 1
        return x * x

    client = app.test_client()
    with app.app_context():
        pages = [client.get("/now").text for _ in range(2)]
        squares = [square(3), square(3), square(4)]
        cache.delete_memoized(square, 3)
        squares += [square(3), square(4)]
        cache.delete_memoized(square)
        squares += [square(4)]
        cache.set("greeting", "hello", timeout=30)
        stored = cache.get("greeting")
        cache.delete("greeting")
        deleted = cache.get("greeting")
        cache.clear()
        pages.append(client.get("/now").text)

    assert pages == ["computed 1 time(s)", "computed 1 time(s)", "computed 2 time(s)"]
    assert squares == [9, 9, 16, 9, 16, 16]
    assert calls == {"now": 2, "square(3)": 2, "square(4)": 2}
    assert (stored, deleted) == ("hello", None)


def test_a_question_mark_in_the_path_cannot_pass_for_a_query(app: Flask, cache: Cache) -> None:
    @app.route("/files/<name>")
    @cache.cached(timeout=50)
    def files(name: str) -> str:
        return f"name={name} q={request.args.get('q')}"

    client = app.test_client()
    poisoned = client.get("/files/x%3Fq=1").get_data(as_text=True)
    genuine = client.get("/files/x?q=1").get_data(as_text=True)

    assert poisoned == "name=x?q=1 q=None"
    assert genuine == "name=x q=1"
    assert stratacache.cache.shared_cache.cache.has("view//files/x%3Fq%3D1")


def test_flask_caching_s_none_options_mean_no_options() -> None:
    cache = Cache(make_app(CACHE_TYPE="SimpleCache", CACHE_OPTIONS=None, CACHE_ARGS=[]))
    assert cache.cache.settings.cache_options == {}


# -- issue 11, migration: Flask-Caching's behaviours -------------------------------------


def _bool_as_on_python_313(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give ``bool`` the signature Python 3.13 gave it: ``(x=False, /)``."""
    import inspect

    real = inspect.signature
    py313 = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_ONLY, default=False)]
    )
    monkeypatch.setattr(inspect, "signature", lambda f, **kw: py313 if f is bool else real(f, **kw))


@pytest.mark.parametrize("python313", [False, True])
def test_unless_bool_caches_on_every_python(
    app: Flask, cache: Cache, calls: Counter[str], monkeypatch: pytest.MonkeyPatch, python313: bool
) -> None:
    if python313:
        _bool_as_on_python_313(monkeypatch)

    @app.route("/b")
    @cache.cached(unless=bool)
    def view() -> str:
        calls["view"] += 1
        return "b"

    client = app.test_client()
    assert [client.get("/b").text for _ in range(3)] == ["b"] * 3
    assert calls["view"] == 1


def test_unless_with_keyword_only_parameters_is_called_without_arguments(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    def unless(*, force: bool = True) -> bool:  # Flask-Caching's wants_args: False
        return force

    @app.route("/k")
    @cache.cached(unless=unless)
    def view() -> str:
        calls["view"] += 1
        return "k"

    client = app.test_client()
    assert [client.get("/k").text for _ in range(2)] == ["k", "k"]
    assert calls["view"] == 2  # bypassed, not a TypeError


def test_assigned_make_cache_key_and_cache_timeout_are_honoured(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    user = {"name": "alice"}

    @app.route("/me")
    @cache.cached(timeout=60)
    def me() -> str:
        calls[user["name"]] += 1
        return user["name"]

    me.make_cache_key = lambda *args, **kwargs: f"me/{user['name']}"
    me.cache_timeout = 5
    client = app.test_client()
    assert client.get("/me").text == "alice"
    user["name"] = "bob"
    assert client.get("/me").text == "bob"  # not alice's page
    assert client.get("/me").text == "bob"
    assert calls == {"alice": 1, "bob": 1}
    remaining = stratacache.cache.shared_cache.cache.lookup_entry("me/bob")[1]
    assert remaining is not None
    assert 0 < remaining <= 5


def test_memoized_cache_timeout_and_make_cache_key(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize(timeout=60)
    def square(x: int) -> int:
        calls["square"] += 1
        return x * x

    square.cache_timeout = 7  # type: ignore[attr-defined]
    assert square(3) == 9
    key = square.make_cache_key(3)  # type: ignore[attr-defined]
    assert key == square.cache_key(3)
    assert square.make_cache_key(square.uncached, 3) == key  # type: ignore[attr-defined]
    remaining = stratacache.cache.shared_cache.cache.lookup_entry(key)[1]
    assert remaining is not None
    assert 0 < remaining <= 7


def test_a_view_returning_none_once_does_not_poison_the_cache(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/flaky")
    @cache.cached(timeout=60)
    def flaky() -> str | None:
        calls["flaky"] += 1
        return None if calls["flaky"] == 1 else "ok"

    client = app.test_client()
    assert client.get("/flaky").status_code == 500
    assert [client.get("/flaky").text for _ in range(2)] == ["ok", "ok"]
    assert calls["flaky"] == 2


def test_cache_dir_as_a_path_works_end_to_end(tmp_path: Path, calls: Counter[str]) -> None:
    app = make_app(CACHE_TYPE="FileSystemCache", CACHE_DIR=tmp_path / "c", SECRET_KEY="s")
    cache = Cache(app, {"CACHE_SECRET_KEY": "k" * 32})

    @cache.memoize(timeout=60)
    def square(x: int) -> int:
        calls["square"] += 1
        return x * x

    assert [square(4), square(4)] == [16, 16]
    assert calls["square"] == 1
    assert any((tmp_path / "c").iterdir())


@pytest.mark.parametrize(
    ("path", "backend"),
    [("cachelib.SimpleCache", "SimpleCache"), ("cachelib.simple.SimpleCache", "SimpleCache")],
)
def test_cache_type_as_a_cachelib_class_path(path: str, backend: str) -> None:
    cache = Cache(make_app(CACHE_TYPE=path))
    assert type(cache.cache.shared_cache.cache).__name__ == backend
    assert cache.set("k", 1)
    assert cache.get("k") == 1


def test_a_generator_is_joined_and_cached_as_flask_caching_does(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @cache.memoize()
    def words(n: int) -> Iterator[str]:
        calls["words"] += 1
        return (str(i) for i in range(n))

    @cache.memoize()
    def items(n: int) -> Iterator[int]:
        calls["items"] += 1
        yield from range(n)

    @app.route("/stream")
    @cache.cached()
    def stream() -> Iterator[bytes]:
        calls["stream"] += 1
        yield b"a"
        yield b"b"

    assert [words(3), words(3)] == ["012", "012"]
    assert [items(2), items(2)] == [[0, 1], [0, 1]]
    client = app.test_client()
    assert [client.get("/stream").data for _ in range(2)] == [b"ab", b"ab"]
    assert calls == {"words": 1, "items": 1, "stream": 1}


def test_cache_app_and_delete_memoized_verhash(app: Flask, calls: Counter[str]) -> None:
    cache = Cache()
    assert cache.app is None
    cache.init_app(app)
    assert cache.app is app

    @cache.memoize()
    def square(x: int) -> int:
        calls["square"] += 1
        return x * x

    square(2), square(3)
    cache.delete_memoized_verhash(square)
    square(2), square(3)
    assert calls["square"] == 4
    with pytest.raises(TypeError, match="memoized function itself"):
        cache.delete_memoized_verhash("square")  # type: ignore[arg-type]


def test_delete_cached_with_view_arguments(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/hi/<name>")
    @cache.cached()
    def hi(name: str) -> str:
        calls[name] += 1
        return f"hi {name}"

    client = app.test_client()
    client.get("/hi/ann"), client.get("/hi/bo")
    with app.test_request_context("/elsewhere"):
        assert hi.make_cache_key(name="ann") == "view//hi/ann"
        assert cache.delete_cached(hi, name="ann") is True
    client.get("/hi/ann"), client.get("/hi/bo")
    assert calls == {"ann": 2, "bo": 1}


class CountingCache(Cache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seen: list[tuple[str, str]] = []
        super().__init__(*args, **kwargs)

    def get(self, key: str) -> Any:
        self.seen.append(("get", key))
        return super().get(key)

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        self.seen.append(("set", key))
        return super().set(key, value, timeout)


def test_a_subclass_sees_the_decorators_reads_and_writes(app: Flask, calls: Counter[str]) -> None:
    cache = CountingCache(app)

    @cache.memoize()
    def square(x: int) -> int:
        calls["square"] += 1
        return x * x

    @app.route("/v")
    @cache.cached()
    def view() -> str:
        calls["view"] += 1
        return "v"

    assert [square(2), square(2)] == [4, 4]
    client = app.test_client()
    assert [client.get("/v").text for _ in range(2)] == ["v", "v"]
    key = square.cache_key(2)
    view_key = "view//v"
    assert cache.seen == [
        ("get", key),
        ("set", key),
        ("get", key),
        ("get", view_key),
        ("set", view_key),
        ("get", view_key),
    ]
    assert calls == {"square": 1, "view": 1}
    assert cache.delete_memoized(square) is None
    assert not cache.has(key)  # the write was tracked in the function's group


def test_delete_memoized_of_a_classmethod_takes_the_class_first(app: Flask) -> None:
    cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})
    calls: list[tuple[int, int]] = []

    class Prices:
        @classmethod
        @cache.memoize(5)
        def total(cls, a: int, b: int) -> int:
            calls.append((a, b))
            return a + b

    assert Prices.total(5, 2) == Prices.total(5, 2) == 7
    with pytest.raises(ValueError, match="give the class first"):
        cache.delete_memoized(Prices.total, 5, 2)  # Flask-Caching refuses it too
    assert len(calls) == 1
    cache.delete_memoized(Prices.total, Prices, 5, 2)
    assert Prices.total(5, 2) == 7
    assert len(calls) == 2
