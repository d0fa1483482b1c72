"""The examples run: the Flask service under gunicorn, and the deployment configuration.

``examples/quickstart.py`` runs in ``test_docs.py``; ``examples/third_party_plugin`` is built,
installed and tested by ``test_third_party_plugin.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
"""Seconds gunicorn may take to answer (two workers importing Flask on a loaded machine)."""
ROUTING_ATTEMPTS = 60
"""Requests tried to reach a given worker before giving up."""


@dataclass
class Service:
    """The example under gunicorn: requests on new connections, routed to a worker."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def call(self, method: str, path: str) -> dict[str, Any]:
        """One request on a new connection (so gunicorn may give it to either worker)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status == 200, (response.status, body, self.log.read_text())
        reply: dict[str, Any] = json.loads(body)
        return reply

    def call_on(self, pid: int | None, method: str, path: str, *, avoid: int = 0) -> dict[str, Any]:
        """Make the request until the worker ``pid`` (or any worker but ``avoid``) serves it.

        Which worker accepts a connection is up to the kernel, and it often favours one. So
        every other attempt first opens an idle connection: the sync worker that accepts it
        blocks reading it, and the request goes to the other worker. Only requests whose
        effect on the wrong worker does not matter to the test are routed this way.
        """
        for attempt in range(ROUTING_ATTEMPTS):
            reply = (
                self.call_past_one_worker(method, path) if attempt % 2 else self.call(method, path)
            )
            if reply["pid"] == pid or (pid is None and reply["pid"] != avoid):
                return reply
        pytest.fail(f"no request reached worker {pid or f'other than {avoid}'}")

    def call_past_one_worker(self, method: str, path: str) -> dict[str, Any]:
        """The request, while an idle connection keeps one worker busy."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10):
            return self.call(method, path)

    def wait_for_workers(self, count: int, timeout: float) -> set[int]:
        """Wait until ``count`` workers have answered (each imports the app on its own)."""
        deadline = time.monotonic() + timeout
        pids: set[int] = set()
        attempt = 0
        while len(pids) < count:
            attempt += 1
            try:
                call = self.call_past_one_worker if attempt % 2 else self.call
                pids.add(call("GET", "/health")["pid"])
            except OSError:
                time.sleep(0.05)
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{len(pids)} of {count} workers answered:\n{self.log.read_text()}")
        return pids

    def stop(self) -> int:
        """SIGTERM, as a process manager stops gunicorn: the workers finish, then the master."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
                pytest.fail(f"gunicorn did not stop on SIGTERM:\n{self.log.read_text()}")
        return self.process.returncode


def gunicorn_command(port: int) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    if not gunicorn.is_file():
        pytest.fail(
            f"gunicorn is not installed next to {sys.executable}: pip install -e . --group dev"
        )
    command = [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"]
    if tuple(int(p) for p in version("gunicorn").split(".")[:2]) >= (25, 1):
        command.append("--no-control-socket")  # no socket in $HOME shared with other runs
    # --pythonpath rather than --chdir: the working directory stays the test's empty one,
    # so no .env file is read.
    return [*command, "--pythonpath", str(FLASK_APP), "app:app"]


@pytest.fixture
def service(redis_url: str, tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            gunicorn_command(port),
            env=clean_env(
                CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_url, PYTHONDONTWRITEBYTECODE="1"
            ),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(port, process, log)
    try:
        service.wait_for_workers(2, BOOT_TIMEOUT)
        yield service
    finally:
        service.stop()


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
