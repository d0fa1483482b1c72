"""Hardening 11 (migration): the Flask-Caching incompatibilities Flask-Caching's suite exposed.

A small real Flask application, on a FileSystemCache whose ``CACHE_DIR`` is a
``pathlib.Path`` (once refused), is driven through Flask's test client for each case that was
a silent incompatibility: ``unless=bool`` on Python 3.13, ``view.make_cache_key`` and
``cache_timeout`` assigned after decoration (one user was served another user's page), a view
returning ``None`` once (500 until the entry expired), cachelib's class paths in
``CACHE_TYPE``, generators, the missing API (``delete_cached(view, **view_args)``,
``delete_memoized_verhash``, ``cache.app``) and a ``Cache`` subclass that saw none of the
decorators' reads and writes. Scenario 117 (``subclass-serializer``): a serializer set as a
subclass attribute, cachelib's way, which was ignored for pickle.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cachelib import serializers as cachelib_serializers
from flask import Flask

import stratacache
from stratacache.flask import Cache
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.rediscache import RedisCache
from stratacache_plugins.simple import SimpleCache

from .figures import record

REQUESTS = 20


def _app(tmp_path: Path, cache_type: str = "FileSystemCache") -> Flask:
    app = Flask(__name__)
    app.config.update(CACHE_TYPE=cache_type, CACHE_SECRET_KEY="s" * 32)
    if cache_type == "FileSystemCache":
        app.config["CACHE_DIR"] = tmp_path / "cache"  # a pathlib.Path, as Flask-Caching takes
    return app


class _Seeing(Cache):
    """An instrumented subclass, as Flask-Caching users write them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seen: Counter[str] = Counter()
        super().__init__(*args, **kwargs)

    def get(self, key: str) -> Any:
        self.seen["get"] += 1
        return super().get(key)

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        self.seen["set"] += 1
        return super().set(key, value, timeout)


def _unless_bool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    real = inspect.signature
    py313 = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_ONLY, default=False)]
    )
    monkeypatch.setattr(inspect, "signature", lambda f, **kw: py313 if f is bool else real(f, **kw))
    app, runs = _app(tmp_path), Counter[str]()
    cache = Cache(app)

    @app.route("/rates")
    @cache.cached(unless=bool)
    def rates() -> str:
        runs["rates"] += 1
        return "1.08"

    client = app.test_client()
    bodies = {client.get("/rates").text for _ in range(REQUESTS)}
    monkeypatch.undo()
    return {"ok": bodies == {"1.08"} and runs["rates"] == 1, "view runs": runs["rates"]}


def _per_user_key(tmp_path: Path) -> dict[str, Any]:
    app, runs = _app(tmp_path), Counter[str]()
    cache = Cache(app)
    user = {"name": ""}

    @app.route("/me")
    @cache.cached(timeout=60)
    def me() -> str:
        runs[user["name"]] += 1
        return f"page of {user['name']}"

    me.make_cache_key = lambda *args, **kwargs: f"me/{user['name']}"
    me.cache_timeout = 7
    client, wrong = app.test_client(), 0
    for i in range(REQUESTS):
        user["name"] = ("alice", "bob")[i % 2]
        wrong += client.get("/me").text != f"page of {user['name']}"
    remaining = stratacache.cache.shared_cache.cache.lookup_entry("me/bob")[1] or 0
    return {
        "ok": wrong == 0 and sum(runs.values()) == 2 and 0 < remaining <= 7,
        "wrong pages": wrong,
        "ttl <= cache_timeout": 0 < remaining <= 7,
    }


def _none_once(tmp_path: Path) -> dict[str, Any]:
    app, runs = _app(tmp_path), Counter[str]()
    cache = Cache(app)

    @app.route("/flaky")
    @cache.cached(timeout=60)
    def flaky() -> str | None:
        runs["flaky"] += 1
        return None if runs["flaky"] == 1 else "ok"

    client = app.test_client()
    statuses = [client.get("/flaky").status_code for _ in range(REQUESTS)]
    errors_after = sum(status != 200 for status in statuses[1:])
    return {"ok": errors_after == 0 and runs["flaky"] == 2, "500s after the None": errors_after}


def _cachelib_path(tmp_path: Path) -> dict[str, Any]:
    app, runs = _app(tmp_path, "cachelib.SimpleCache"), Counter[str]()
    cache = Cache(app)

    @cache.memoize(timeout=60)
    def square(x: int) -> int:
        runs["square"] += 1
        return x * x

    results = {square(3) for _ in range(REQUESTS)}
    backend = type(cache.cache.shared_cache.cache).__name__
    return {"ok": results == {9} and runs["square"] == 1, "backend": backend}


def _generators(tmp_path: Path) -> dict[str, Any]:
    app, runs = _app(tmp_path), Counter[str]()
    cache = Cache(app)

    @app.route("/csv")
    @cache.cached()
    def csv() -> Iterator[str]:
        runs["csv"] += 1
        yield "a,b\n"
        yield "1,2\n"

    client = app.test_client()
    bodies = {client.get("/csv").text for _ in range(REQUESTS)}
    return {"ok": bodies == {"a,b\n1,2\n"} and runs["csv"] == 1, "view runs": runs["csv"]}


def _missing_api(tmp_path: Path) -> dict[str, Any]:
    app, runs = _app(tmp_path), Counter[str]()
    cache = Cache()
    cache.init_app(app)

    @app.route("/hi/<name>")
    @cache.cached()
    def hi(name: str) -> str:
        runs[name] += 1
        return f"hi {name}"

    @cache.memoize()
    def square(x: int) -> int:
        runs["square"] += 1
        return x * x

    client = app.test_client()
    client.get("/hi/ann")
    with app.test_request_context("/"):
        deleted = cache.delete_cached(hi, name="ann")
    client.get("/hi/ann")
    square(2)
    cache.delete_memoized_verhash(square)
    square(2)
    ok = cache.app is app and deleted and runs["ann"] == 2 and runs["square"] == 2
    return {"ok": ok, "delete_cached(view, name=)": deleted}


def _subclass(tmp_path: Path) -> dict[str, Any]:
    app = _app(tmp_path)
    cache = _Seeing(app)

    @app.route("/v")
    @cache.cached()
    def view() -> str:
        return "v"

    @cache.memoize()
    def square(x: int) -> int:
        return x * x

    client = app.test_client()
    for _ in range(REQUESTS):
        client.get("/v")
        square(5)
    gets, sets = cache.seen["get"], cache.seen["set"]
    return {"ok": gets == 2 * REQUESTS and sets == 2, "gets seen": gets, "sets seen": sets}


CASES: dict[str, Callable[..., dict[str, Any]]] = {
    "unless=bool on Python 3.13": _unless_bool,
    "view.make_cache_key / cache_timeout assigned": _per_user_key,
    "a view returning None once": _none_once,
    "CACHE_TYPE=cachelib.SimpleCache": _cachelib_path,
    "a generator view": _generators,
    "delete_cached(view, **args), verhash, cache.app": _missing_api,
    "a subclass's get/set": _subclass,
}


def test_flask_caching_incompatibilities_are_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = []
    for number, (case, run) in enumerate(CASES.items()):
        where = tmp_path / str(number)
        outcome = run(where, monkeypatch) if run is _unless_bool else run(where)
        ok = outcome.pop("ok")
        measured = "; ".join(f"{name}: {value}" for name, value in outcome.items())
        rows.append({"case": case, "outcome": "fixed" if ok else "BROKEN", "measured": measured})
    broken = [row["case"] for row in rows if row["outcome"] != "fixed"]
    record(
        scenario=118,
        title="Hardening 11 (migration): Flask-Caching incompatibilities fixed",
        requirement=(
            "every case behaves as Flask-Caching: no wrong page, no 500 after a None, one"
            " view run per cached entry, every decorator read and write seen by a subclass"
        ),
        figures={
            "cases": len(rows),
            "fixed": len(rows) - len(broken),
            "requests per case": REQUESTS,
        },
        table=rows,
    )
    assert broken == []


# -- a serializer set as a subclass attribute (cachelib's mechanism) ----------------------


class _TaggingSerializer(cachelib_serializers.BaseSerializer):
    """Writes JSON behind a tag, so the bytes show which serializer wrote them."""

    def dumps(self, value: Any, protocol: int | None = None) -> bytes:
        return b"tag:" + json.dumps(value).encode()

    def loads(self, bvalue: bytes) -> Any:
        return json.loads(bvalue.removeprefix(b"tag:"))

    def dump(self, value: Any, f: Any, protocol: int | None = None) -> None:
        f.write(self.dumps(value))

    def load(self, f: Any) -> Any:
        return self.loads(f.read())


def test_a_subclass_serializer_is_used_not_pickle(tmp_path: Path, redis_url: str) -> None:
    class TaggedSimple(SimpleCache):
        serializer = _TaggingSerializer()

    class TaggedFiles(FileSystemCache):
        serializer = _TaggingSerializer()

    class TaggedRedis(RedisCache):
        serializer = _TaggingSerializer()

    def stored_simple(cache: Any) -> bytes:
        return bytes(cache._cache["k"][1])

    def stored_files(cache: Any) -> bytes:
        return next(
            p.read_bytes() for p in (tmp_path / "files").rglob("*") if b"tag:" in p.read_bytes()
        )

    def stored_redis(cache: Any) -> bytes:
        return bytes(cache.client.get("k"))

    backends: list[tuple[str, Any, Callable[[Any], bytes]]] = [
        ("SimpleCache", TaggedSimple(), stored_simple),
        ("FileSystemCache", TaggedFiles(str(tmp_path / "files")), stored_files),
        ("RedisCache", TaggedRedis(redis_url), stored_redis),
    ]
    rows = []
    for name, backend, stored in backends:
        value = {"user": 7, "roles": ["a", "b"]}
        writes = [backend.set("k", value) for _ in range(REQUESTS)]
        read = [backend.get("k") for _ in range(REQUESTS)]
        data = stored(backend)
        used = data.endswith(json.dumps(value).encode()) and b"tag:" in data
        ok = all(writes) and read == [value] * REQUESTS and used
        rows.append(
            {
                "backend": name,
                "outcome": "subclass serializer" if ok else "BROKEN (pickle)",
                "stored": data[-40:].decode(errors="replace"),
            }
        )
    broken = [row["backend"] for row in rows if not row["outcome"].startswith("subclass")]
    record(
        scenario=117,
        name="subclass-serializer",
        title="Hardening 11 (migration): a serializer set as a subclass attribute",
        requirement=(
            "class MyCache(Backend): serializer = S() stores what S writes, on SimpleCache,"
            " FileSystemCache (through S.dump/S.load) and RedisCache, never silently pickle"
        ),
        figures={
            "backends": len(rows),
            "using the subclass serializer": len(rows) - len(broken),
            "writes and reads per backend": REQUESTS,
        },
        table=rows,
    )
    assert broken == []
