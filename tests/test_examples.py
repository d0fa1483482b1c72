"""The examples run: the Flask service under gunicorn, and the deployment configuration.

``examples/quickstart.py`` runs in ``test_docs.py``; ``examples/third_party_plugin`` is built,
installed and tested by ``test_third_party_plugin.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import flask
import pytest
from dotenv import dotenv_values

from stratacache import CacheSettings, CacheStack
from stratacache.flask import settings_from_config

from .conftest import ROOT, clean_env
from .redis_server import RedisServer, free_port
from .web_service import Service, running

EXAMPLES = ROOT / "examples"
FLASK_APP = EXAMPLES / "flask_app"
ENV_CONFIG = EXAMPLES / "env_config"
KEY_PREFIXES = ("CACHE_", "LOCALCACHE_")


def test_every_example_is_described_in_the_docs() -> None:
    page = (ROOT / "docs" / "examples.md").read_text()
    for example in sorted(EXAMPLES.iterdir()):
        if example.name.startswith((".", "__")):
            continue
        assert f"## {example.name}" in page, f"docs/examples.md does not describe {example.name}"
        if example.is_dir():
            assert (example / "README.md").is_file(), f"{example.name} has no README.md"


# -- env_config --------------------------------------------------------------------------


def flask_config() -> flask.Config:
    config = flask.Config(str(ENV_CONFIG))
    assert config.from_pyfile("flask_config.py")
    return config


def test_env_file_and_flask_config_give_equal_settings(tmp_path: Path) -> None:
    # The working directory is tmp_path, with no CACHE_* variable set (conftest.py): the
    # .env file is read from there, as a service reads it from its own directory.
    shutil.copy(ENV_CONFIG / ".env", tmp_path / ".env")
    from_env_file = CacheSettings()
    config = flask_config()
    from_flask = settings_from_config(config)

    # Compared as validated: backend keys are typed by their backends' models (an
    # environment gives "0.25", a Flask config 0.25).
    from stratacache.reference import effective_settings

    assert {k: v for k, (v, _) in effective_settings(from_flask).items()} == {
        k: v for k, (v, _) in effective_settings(from_env_file).items()
    }
    # The same keys are set in both files (none left to its default in one only), and each
    # was read from where it was written.
    keys = set(dotenv_values(ENV_CONFIG / ".env"))
    assert keys == {k for k in config if k.startswith(KEY_PREFIXES)}
    assert {k for k, s in from_env_file.sources().items() if s == ".env"} == keys
    assert {k for k, s in from_flask.sources().items() if s == "mapping"} == keys
    assert "MAX_CONTENT_LENGTH" in config  # Flask's own key, ignored by stratacache
    # Valid enough to build the layers (the Redis backend connects on first use only).
    for settings in (from_env_file, from_flask):
        shared = CacheStack()
        shared.configure(settings)
        assert type(shared.shared_cache.cache).__name__ == "RedisCacheNoExceptions"


@pytest.mark.subprocess
def test_stratacache_config_reads_the_env_file(tmp_path: Path) -> None:
    shutil.copy(ENV_CONFIG / ".env", tmp_path / ".env")
    result = subprocess.run(
        [sys.executable, "-m", "stratacache", "config", "--json"],
        env=clean_env(CACHE_DEFAULT_TIMEOUT="60"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = json.loads(result.stdout)
    assert shown["CACHE_TYPE"] == {"value": "RedisCacheNoExceptions", "source": ".env"}
    assert shown["CACHE_DEFAULT_TIMEOUT"] == {"value": 60, "source": "environment"}
    assert shown["CACHE_SECRET_KEY"]["value"] == ["**********", "**********"]


# -- flask_app under gunicorn ------------------------------------------------------------

BOOT_TIMEOUT = 20.0
"""Seconds a server may take to answer (two workers importing the app on a loaded machine)."""


def gunicorn_command(port: int) -> list[str]:
    gunicorn = installed("gunicorn")
    command = [gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"]
    if tuple(int(p) for p in version("gunicorn").split(".")[:2]) >= (25, 1):
        command.append("--no-control-socket")  # no socket in $HOME shared with other runs
    # --pythonpath rather than --chdir: the working directory stays the test's empty one,
    # so no .env file is read.
    return [*command, "--pythonpath", str(FLASK_APP), "app:app"]


def installed(script: str) -> str:
    """The path of ``script`` in this virtual environment (fail, never skip, without it)."""
    path = Path(sys.executable).with_name(script)
    if not path.is_file():
        pytest.fail(
            f"{script} is not installed next to {sys.executable}: pip install -e . --group dev"
        )
    return str(path)


@contextmanager
def two_workers(
    command: Callable[[int], list[str]], redis_url: str, tmp_path: Path
) -> Iterator[Service]:
    """Run ``command(port)`` (an example's server) with its shared layer on ``redis_url``."""
    port = free_port()
    env = clean_env(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_url, PYTHONDONTWRITEBYTECODE="1")
    argv = command(port)
    with running(
        Path(argv[0]).name, argv, port, env=env, cwd=tmp_path, workers=2, boot_timeout=BOOT_TIMEOUT
    ) as service:
        yield service


@pytest.fixture
def service(redis_url: str, tmp_path: Path) -> Iterator[Service]:
    with two_workers(gunicorn_command, redis_url, tmp_path) as service:
        yield service


@pytest.mark.subprocess
def test_flask_app_workers_share_the_shared_layer(
    service: Service, redis_server: RedisServer
) -> None:
    redis = redis_server.client()

    # 1. A first worker computes the value: its local layer and the shared layer hold it.
    first = service.call("GET", "/rates/EUR")
    a = first["pid"]
    value = first["value"]
    assert value["computed_by"] == a
    assert value["rates"] == {"USD": 1.08, "GBP": 0.85}
    a_layers = service.call_on(a, "GET", "/layers/EUR")
    assert (a_layers["local"], a_layers["shared"]) == (True, True)
    assert redis.exists(a_layers["key"]) == 1

    # 2. The other worker's local layer is its own, and empty...
    b_layers = service.call_on(None, "GET", "/layers/EUR", avoid=a)
    b = b_layers["pid"]
    assert (b_layers["local"], b_layers["shared"]) == (False, True)
    # ... it serves the first worker's computation from the shared layer, and keeps a copy.
    # (Routing: a request landing on worker a is a local hit there, which changes nothing.)
    second = service.call_on(b, "GET", "/rates/EUR")
    assert second["value"] == value, "the value should have been computed once"
    assert service.call_on(b, "GET", "/layers/EUR")["local"] is True

    # 3. clear_cache() in one worker empties its local layer and the shared layer (Redis).
    cleared = service.call("POST", "/clear")
    w = cleared["pid"]
    other = b if w == a else a
    assert cleared["removed"] >= 2  # its local copy and the shared entry
    assert [k for k in redis.scan_iter() if b"exchange_rates" in k] == []
    w_layers = service.call_on(w, "GET", "/layers/EUR")
    assert (w_layers["local"], w_layers["shared"]) == (False, False)
    # The other worker's local copy is beyond its reach: it lives out its
    # LOCALCACHE_DEFAULT_TIMEOUT (the documented bound on staleness between processes).
    kept = service.call_on(other, "GET", "/layers/EUR")
    assert (kept["local"], kept["shared"]) == (True, False)
    assert service.call_on(other, "GET", "/rates/EUR")["value"] == value
    # The worker that cleared computes afresh (if a routing attempt landed on it earlier,
    # that attempt computed it, which is the same thing).
    fresh = service.call_on(w, "GET", "/rates/EUR")["value"]
    assert fresh["computation"] != value["computation"]
    assert fresh["computed_by"] == w

    assert service.stop() == 0


# -- fastapi_app under uvicorn -----------------------------------------------------------

FASTAPI_APP = EXAMPLES / "fastapi_app"
RATES = "app.exchange_rates"
"""The cached function of the example, as ``stats()`` names it (uvicorn imports ``app``)."""


def uvicorn_command(port: int) -> list[str]:
    # --app-dir rather than a working directory: the test's empty one, so no .env is read.
    return [
        *(installed("uvicorn"), "app:app", "--app-dir", str(FASTAPI_APP)),
        *("--workers", "2", "--host", "127.0.0.1", "--port", str(port)),
        *("--timeout-graceful-shutdown", "5"),
    ]


@pytest.fixture
def fastapi_service(redis_url: str, tmp_path: Path) -> Iterator[Service]:
    with two_workers(uvicorn_command, redis_url, tmp_path) as service:
        yield service


def rates_counts(service: Service, pid: int) -> dict[str, Any]:
    """The counters of exchange_rates in the worker ``pid`` (empty before its first call)."""
    functions = service.call_on(pid, "GET", "/stats")["stats"]["functions"]
    counts: dict[str, Any] = functions.get(RATES, {"computations": 0, "shared_hits": 0})
    return counts


@pytest.mark.subprocess
def test_fastapi_app_workers_share_the_shared_layer(
    fastapi_service: Service, redis_server: RedisServer
) -> None:
    service, redis = fastapi_service, redis_server.client()
    health = service.call("GET", "/health")
    assert (health["shared"], health["local"]) == ("RedisCache", "SimpleCache")

    # 1. A first worker computes the value and writes the shared layer.
    first = service.call("GET", "/rates/EUR")
    a, value = first["pid"], first["value"]
    assert value["computed_by"] == a
    assert value["rates"] == {"USD": 1.08, "GBP": 0.85}
    assert redis.exists(first["key"]) == 1

    # 2. The other worker serves that computation as a shared hit (routing requests that land
    # on the first worker are local hits there, which changes nothing).
    second = service.call_on(None, "GET", "/rates/EUR", avoid=a)
    b = second["pid"]
    assert second["value"] == value, "the value should have been computed once"
    counts = {pid: rates_counts(service, pid) for pid in (a, b)}
    assert counts[a]["computations"] == 1
    assert (counts[b]["computations"], counts[b]["shared_hits"]) == (0, 1)
    # Then from its own local layer.
    assert service.call_on(b, "GET", "/rates/EUR")["value"] == value
    assert rates_counts(service, b)["local_hits"] >= 1

    # 3. await cache.aset in one worker, await cache.aget in the other: through Redis.
    stored = service.call("PUT", "/notes/greeting", body={"text": "hello"})
    assert stored["stored"] is True
    note = service.call_on(None, "GET", "/notes/greeting", avoid=stored["pid"])
    assert note["text"] == "hello"

    # 4. await clear_cache() in one worker empties its local layer and Redis; the worker that
    # cleared computes afresh.
    cleared = service.call("POST", "/clear")
    w = cleared["pid"]
    assert cleared["removed"] >= 2  # its local copy and the shared entry
    assert [k for k in redis.scan_iter() if b"exchange_rates" in k] == []
    fresh = service.call_on(w, "GET", "/rates/EUR")["value"]
    assert fresh["computation"] != value["computation"]
    assert fresh["computed_by"] == w

    assert service.stop() == 0


@pytest.mark.subprocess
def test_fastapi_app_concurrent_requests_compute_once_per_worker(
    fastapi_service: Service,
) -> None:
    pids = sorted(fastapi_service.wait_for_workers(2, BOOT_TIMEOUT))
    before = {pid: rates_counts(fastapi_service, pid)["computations"] for pid in pids}

    # 40 concurrent requests for one cold key, on 40 connections: both workers serve them.
    with ThreadPoolExecutor(max_workers=40) as pool:
        replies = list(pool.map(lambda _: fastapi_service.call("GET", "/rates/USD"), range(40)))

    served = Counter(reply["pid"] for reply in replies)
    computations = {
        pid: rates_counts(fastapi_service, pid)["computations"] - before[pid] for pid in pids
    }
    # Within a worker, concurrent awaiters share one computation (single flight); two
    # workers without atomic_writes may each compute once, never more.
    assert all(computations[pid] <= 1 for pid in pids), (computations, served)
    assert 1 <= sum(computations.values()) <= 2
    assert len({reply["value"]["computation"] for reply in replies}) == sum(computations.values())
