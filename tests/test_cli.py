"""The operator CLI: every command, with tables, JSON and exit codes, against real servers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner

import stratacache
from stratacache import cached_for
from stratacache.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, main

from .conftest import clean_env
from .redis_server import RedisServer, wait_until
from .redis_topologies import RedisClusterNodes


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_backends_table(runner: CliRunner) -> None:
    result = runner.invoke(main, ["backends"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "CLASS", "DISTRIBUTION", "VERSION"]
    assert any(
        line.split()[:3] == ["SimpleCache", "stratacache_plugins.simple:SimpleCache", "stratacache"]
        for line in lines
    )


def test_backends_json(runner: CliRunner) -> None:
    result = runner.invoke(main, ["backends", "--json"])
    names = {item["name"]: item for item in json.loads(result.output)}
    assert names["FileSystemCache"]["target"] == "stratacache_plugins.filesystem:FileSystemCache"
    assert set(names["NullCache"]) == {"name", "target", "distribution", "version"}


def test_config_shows_values_sources_and_masks_secrets(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_TYPE", "SimpleCache")
    monkeypatch.setenv("CACHE_REDIS_PASSWORD", "hunter2")
    result = runner.invoke(main, ["config"])
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    assert rows["CACHE_TYPE"] == ['"SimpleCache"', "environment"]
    assert rows["CACHE_REDIS_PASSWORD"] == ['"**********"', "environment"]
    assert rows["CACHE_DEFAULT_TIMEOUT"] == ["300", "default"]


def test_config_json(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCACHE_THRESHOLD", "1000")
    data = json.loads(runner.invoke(main, ["config", "--json"]).output)
    assert data["LOCALCACHE_THRESHOLD"] == {"value": 1000, "source": "environment"}
    assert data["CACHE_TYPE"] == {"value": "NullCache", "source": "default"}


def test_invalid_config_exits_2_listing_each_problem(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_DEFAULT_TIMEOUT", "-1")
    monkeypatch.setenv("CACHE_TYPE", "Nowhere")
    result = runner.invoke(main, ["config"])
    assert result.exit_code == EXIT_CONFIG
    assert "CACHE_DEFAULT_TIMEOUT='-1'" in result.output
    assert "CACHE_TYPE='Nowhere'" in result.output


@pytest.mark.subprocess
def test_python_m_stratacache() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stratacache", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Usage: stratacache" in result.stdout
    assert "backends" in result.stdout
    assert "config" in result.stdout


# -- ping, info, stats, clear -----------------------------------------------------------------


PREFIX = "cli_"


@cached_for(minutes=5)
def rates(currency: str) -> dict[str, float]:
    return {currency: 1.0}


@cached_for(minutes=5)
def users(user_id: int) -> str:
    return f"user {user_id}"


@pytest.fixture
def redis_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a deployment whose shared layer is the test's redis-server."""
    env = {
        "CACHE_TYPE": "RedisCacheNoExceptions",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": PREFIX,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def stopped_redis(
    make_redis_server: Callable[[], RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment names a redis-server that has stopped, behind RedisCacheNoExceptions."""
    server = make_redis_server()
    monkeypatch.setenv("CACHE_TYPE", "RedisCacheNoExceptions")
    monkeypatch.setenv("CACHE_REDIS_URL", server.url)
    server.stop()


@pytest.fixture
def filled(redis_env: dict[str, str], redis_server: RedisServer) -> redis.Redis:
    """Entries of two functions and one plain key under the prefix, one key outside it."""
    stratacache.configure()
    for currency in ("EUR", "USD", "GBP"):
        rates(currency)
    users(1)
    stratacache.cache.set("plain", 1)
    client = redis_server.client()
    client.set("other_tenant", b"keep me")
    return client


def test_help_lists_the_commands_and_the_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == EXIT_OK
    for command in ("backends", "config", "ping", "info", "stats", "clear"):
        assert f"  {command} " in result.output
    assert "Exit codes:" in result.output
    assert "1  an operation failed" in result.output
    assert "2  invalid configuration" in result.output
    stats_help = runner.invoke(main, ["stats", "--help"]).output
    assert "stratacache.cache.stats()" in stats_help
    assert "Prometheus" in stats_help


def test_ping_shows_the_shared_tier_and_says_local_tiers_are_per_process(
    runner: CliRunner,
) -> None:
    result = runner.invoke(main, ["ping"])
    assert result.exit_code == EXIT_OK, result.output
    lines = result.output.splitlines()
    assert [line.split()[:3] for line in lines[1:-1]] == [["shared", "NullCache", "ok"]]
    assert lines[-1] == (
        "Local tiers are per process, each application process has its own:"
        " local (SimpleCache), local_no_serializer (SimpleCacheNoSerializer)."
    )
    data = json.loads(runner.invoke(main, ["ping", "--json"]).stdout)
    assert list(data["layers"]) == ["shared"]
    assert data["local_tiers_per_process"] == {
        "local": "SimpleCache",
        "local_no_serializer": "SimpleCacheNoSerializer",
    }


def test_ping_redis_with_latency(runner: CliRunner, redis_env: dict[str, str]) -> None:
    result = runner.invoke(main, ["ping", "--json", "--count", "5"])
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    shared = data["layers"]["shared"]
    assert shared["backend"] == "RedisCacheNoExceptions"
    assert 0 < shared["latency_ms"] < 1000


@pytest.mark.usefixtures("stopped_redis")
@pytest.mark.parametrize("backend", ["RedisCache", "RedisCacheNoExceptions"])
def test_ping_a_stopped_server_exits_1(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("CACHE_TYPE", backend)
    result = runner.invoke(main, ["ping"])
    assert result.exit_code == EXIT_FAILED
    shared = next(line for line in result.output.splitlines() if line.startswith("shared"))
    assert shared.split()[1:3] == [backend, "FAILED"]
    assert "Connection refused" in shared or "connecting" in shared
    data = json.loads(runner.invoke(main, ["ping", "--json"]).stdout)
    assert data["ok"] is False
    assert "local" not in data["layers"]
    assert data["layers"]["shared"]["error"].startswith("RedisCacheError")


def test_info_describes_the_redis_server_and_the_prefix(runner: CliRunner, filled: Any) -> None:
    result = runner.invoke(main, ["info", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    shared = json.loads(result.stdout)["layers"]["shared"]
    assert shared["backend"] == "RedisCacheNoExceptions"
    assert shared["key_prefix"] == PREFIX
    assert shared["entries"] == 5  # three rates, one user, one plain key
    assert shared["tracked_functions"] == 2
    assert shared["database_keys"] == 8  # and two tracking sets, one other tenant's key
    assert shared["redis_version"]
    assert shared["clears"] == f"every key under the prefix 'cli_' in {shared['url']}"
    assert set(json.loads(result.stdout)["layers"]) == {"shared"}
    text = runner.invoke(main, ["info"]).output
    assert "shared: RedisCacheNoExceptions" in text
    assert "used_memory_human" in text
    assert "local: SimpleCache" not in text
    assert text.rstrip().endswith("local_no_serializer (SimpleCacheNoSerializer).")


def test_stats_shows_the_servers_counters_and_entries_per_function(
    runner: CliRunner, filled: Any
) -> None:
    rates("EUR")  # a local hit: the server does not see it
    stratacache.cache.local_cache.cache.clear()
    rates("EUR")  # a shared hit
    result = runner.invoke(main, ["stats", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.stdout)
    assert data["backend"] == "RedisCacheNoExceptions"
    found = data["stats"]
    assert found["entries"] == 5
    assert found["functions"] == {f"{__name__}.rates": 3, f"{__name__}.users": 1}
    assert found["keyspace_hits"] >= 1
    assert found["keyspace_misses"] >= 4
    assert {"evicted_keys", "expired_keys", "hit_ratio"} <= set(found)
    text = runner.invoke(main, ["stats"]).output
    assert f"{__name__}.rates  3" in text
    assert "stratacache.cache.stats()" in text  # where the in-process counters are


@pytest.mark.usefixtures("stopped_redis")
def test_stats_of_a_stopped_server_exits_1(runner: CliRunner) -> None:
    for command in ("stats", "info"):
        result = runner.invoke(main, [command])
        assert result.exit_code == EXIT_FAILED, command
        assert "RedisCacheError" in result.output


def test_clear_one_function_after_confirmation(runner: CliRunner, filled: redis.Redis) -> None:
    target = f"{__name__}:rates"
    declined = runner.invoke(main, ["clear", "--function", target], input="n\n")
    assert declined.exit_code == EXIT_FAILED
    assert f"Delete every entry of {__name__}.rates" in declined.output
    assert filled.exists(PREFIX + rates.cache_key("EUR"))

    result = runner.invoke(main, ["clear", "--function", target], input="y\n")
    assert result.exit_code == EXIT_OK, result.output
    assert f"Deleted 3 entries of {__name__}.rates" in result.output
    assert not filled.exists(PREFIX + rates.cache_key("EUR"))
    assert filled.exists(PREFIX + users.cache_key(1))
    again = runner.invoke(main, ["clear", "--function", target, "--yes", "--json"])
    assert json.loads(again.stdout) == {
        "ok": True,
        "function": f"{__name__}.rates",
        "deleted": 0,
    }


def test_clear_all_deletes_only_our_prefix(runner: CliRunner, filled: redis.Redis) -> None:
    result = runner.invoke(main, ["clear", "--all"], input="y\n")
    assert result.exit_code == EXIT_OK, result.output
    assert "Delete every key under the prefix 'cli_'" in result.output
    assert "(5 entries)" in result.output
    assert "5 entries deleted" in result.output
    assert filled.keys("cli_*") == []
    assert filled.get("other_tenant") == b"keep me"


@pytest.mark.usefixtures("stopped_redis")
def test_clear_with_a_stopped_server_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(main, ["clear", "--function", "app:f", "--yes"])
    assert result.exit_code == EXIT_FAILED
    assert "clearing the shared layer" in result.output
    assert runner.invoke(main, ["clear", "--all", "--yes"]).exit_code == EXIT_FAILED


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["clear"], "give exactly one of --function MODULE:QUALNAME and --all"),
        (["clear", "--all", "--function", "a:b"], "give exactly one"),
        (["clear", "--function", "rates"], "is not MODULE:QUALNAME"),
        (["clear", "--function", "app:two words"], "is not MODULE:QUALNAME"),
        (["ping", "--count", "0"], "Invalid value for '--count'"),
    ],
    ids=["neither", "both", "no-colon", "space", "count"],
)
def test_usage_errors_exit_2(runner: CliRunner, arguments: list[str], message: str) -> None:
    result = runner.invoke(main, arguments)
    assert result.exit_code == EXIT_CONFIG
    assert message in result.output


@pytest.mark.parametrize("command", ["ping", "info", "stats", "clear --all --yes"])
def test_invalid_configuration_exits_2(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("CACHE_TYPE", "RedisCahe")
    result = runner.invoke(main, command.split())
    assert result.exit_code == EXIT_CONFIG
    assert "CACHE_TYPE='RedisCahe'" in result.output


def test_qualified_names_of_methods_and_nested_functions(runner: CliRunner) -> None:
    for target, group in [
        ("myapp.models:User.load", "myapp.models.User.load"),
        ("myapp:outer.<locals>.inner", "myapp.outer.<locals>.inner"),
    ]:
        result = runner.invoke(main, ["clear", "--function", target, "--yes", "--json"])
        assert result.exit_code == EXIT_OK, result.output
        assert json.loads(result.stdout) == {"ok": True, "function": group, "deleted": 0}


@pytest.mark.subprocess
def test_subprocess_ping_and_clear_against_redis(
    redis_url: str, make_redis_server: Callable[[], RedisServer]
) -> None:
    env = clean_env(
        CACHE_TYPE="RedisCacheNoExceptions", CACHE_REDIS_URL=redis_url, CACHE_KEY_PREFIX=PREFIX
    )
    command = [sys.executable, "-m", "stratacache"]

    def run(*arguments: str, env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *arguments], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    ping = run("ping", "--json")
    assert ping.returncode == EXIT_OK, ping.stderr
    assert json.loads(ping.stdout)["layers"]["shared"]["ok"] is True
    cleared = run("clear", "--all", "--yes", "--json")
    assert cleared.returncode == EXIT_OK, cleared.stderr
    assert json.loads(cleared.stdout) == {"ok": True, "all": True, "deleted": 0}
    declined = run("clear", "--all")  # no terminal to answer: aborted, nothing deleted
    assert declined.returncode == EXIT_FAILED
    assert "Aborted" in declined.stderr

    server = make_redis_server()
    server.stop()
    down = run("ping", env={**env, "CACHE_REDIS_URL": server.url})
    assert down.returncode == EXIT_FAILED
    assert "FAILED" in down.stdout


def test_ping_info_and_stats_report_each_cluster_node_with_its_role(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisClusterNodes
) -> None:
    monkeypatch.setenv("CACHE_TYPE", "RedisCache")
    monkeypatch.setenv("CACHE_REDIS_CLUSTER", redis_cluster.startup_nodes)
    monkeypatch.setenv("CACHE_KEY_PREFIX", "cli_nodes")
    replicas_listed(redis_cluster)
    result = runner.invoke(main, ["ping"])
    assert result.exit_code == EXIT_OK, result.output
    roles = [line.split()[1] for line in result.output.splitlines() if line.startswith("  127.")]
    assert sorted(roles) == ["(master)"] * 3 + ["(replica)"] * 3
    data = json.loads(runner.invoke(main, ["ping", "--json"]).stdout)
    assert len(data["layers"]["shared"]["nodes"]) == 6
    info = json.loads(runner.invoke(main, ["info", "--json"]).stdout)["layers"]["shared"]
    assert sorted(node["role"] for node in info["nodes"].values()) == sorted(roles_of(data))
    stats = json.loads(runner.invoke(main, ["stats", "--json"]).stdout)["stats"]
    masters = [node for node in stats["nodes"].values() if node["role"] == "master"]
    assert stats["keyspace_hits"] == sum(node["keyspace_hits"] for node in masters)


def replicas_listed(cluster: RedisClusterNodes) -> None:
    """Wait until CLUSTER SLOTS lists each master's replica, as clients discover them.

    Redis leaves out a replica whose replication offset is still 0: on a cluster that has
    taken no write yet, each master gets one (FLUSHALL and WAIT) first.
    """
    cluster.flush()

    def missing() -> str | None:  # in the view of every node: a client may ask any of them
        for node in cluster.nodes:
            ranges = node.probe().execute_command("CLUSTER", "SLOTS")
            short = [r for r in ranges if len(r) < 4]
            if short:
                return f"{node.port} lists {len(short)} slot ranges without their replica"
        return None

    wait_until(missing, "the replicas in CLUSTER SLOTS", 10)


def roles_of(ping: dict[str, Any]) -> list[str]:
    return [node["role"] for node in ping["layers"]["shared"]["nodes"]]


# -- unknown and Kubernetes-injected environment variables ------------------------------------


KUBERNETES_SERVICE_LINKS = {  # what a Service named cache, and one named cache-redis, inject
    "CACHE_SERVICE_HOST": "10.0.0.1",
    "CACHE_SERVICE_PORT": "6379",
    "CACHE_SERVICE_PORT_REDIS": "6379",
    "CACHE_PORT": "tcp://10.0.0.1:6379",
    "CACHE_PORT_6379_TCP": "tcp://10.0.0.1:6379",
    "CACHE_PORT_6379_TCP_PROTO": "tcp",
    "CACHE_PORT_6379_TCP_PORT": "6379",
    "CACHE_PORT_6379_TCP_ADDR": "10.0.0.1",
    "CACHE_REDIS_SERVICE_HOST": "10.0.0.2",
    "CACHE_REDIS_SERVICE_PORT": "6379",
    "CACHE_REDIS_PORT_6379_TCP_ADDR": "10.0.0.2",
}


def config_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "stratacache.assembly"]


def test_a_misspelt_environment_variable_warns_with_a_did_you_mean(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CACHE_REDIS_PROT", "6380")
    Path(".env").write_text("LOCALCACHE_TRESHOLD=10\n")  # in the test's own directory
    with caplog.at_level(logging.WARNING, logger="stratacache"):
        result = runner.invoke(main, ["config", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    (warning,) = config_warnings(caplog)
    assert "CACHE_REDIS_PROT: unknown configuration key; did you mean CACHE_REDIS_PORT?" in warning
    assert "LOCALCACHE_TRESHOLD: unknown configuration key; did you mean" in warning


def test_the_unknown_variable_warning_can_be_silenced(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CACHE_REDIS_PROT", "6380")
    monkeypatch.setenv("CACHE_WARN_UNKNOWN_ENV", "false")
    with caplog.at_level(logging.WARNING, logger="stratacache"):
        assert runner.invoke(main, ["ping"]).exit_code == EXIT_OK
    assert config_warnings(caplog) == []


def test_kubernetes_service_links_are_not_unknown_keys(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key, value in KUBERNETES_SERVICE_LINKS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CACHE_REDIS_PORT", "tcp://10.0.0.2:6379")  # no Redis tier: unused
    with caplog.at_level(logging.WARNING, logger="stratacache"):
        assert runner.invoke(main, ["ping"]).exit_code == EXIT_OK
    assert config_warnings(caplog) == []


def test_a_kubernetes_variable_colliding_with_a_key_says_how_to_avoid_it(
    runner: CliRunner, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_TYPE", "RedisCache")
    monkeypatch.setenv("CACHE_REDIS_PORT", "tcp://10.0.0.1:6379")
    result = runner.invoke(main, ["ping"])
    assert result.exit_code == EXIT_CONFIG
    assert "CACHE_REDIS_PORT='tcp://10.0.0.1:6379'" in result.output
    assert "Kubernetes injects for a Service named 'cache-redis'" in result.output
    assert "enableServiceLinks: false" in result.output
    port = redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
    monkeypatch.setenv("CACHE_REDIS_PORT", port)  # set explicitly in the pod spec: it wins
    assert runner.invoke(main, ["ping"]).exit_code == EXIT_OK


# -- --json on every outcome ------------------------------------------------------------------


def json_failure(result: Any, code: int) -> dict[str, Any]:
    """The one JSON object a failed command printed on stdout, with its exit code."""
    assert result.exit_code == code, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["exit_code"] == code
    return data


@pytest.mark.parametrize("command", ["config", "ping", "info", "stats", "clear --all --yes"])
def test_json_reports_an_invalid_configuration_as_json(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("CACHE_TYPE", "RedisCahe")
    data = json_failure(runner.invoke(main, [*command.split(), "--json"]), EXIT_CONFIG)
    assert any(p.startswith("CACHE_TYPE='RedisCahe'") for p in data["problems"])


def test_json_reports_an_invalid_backend_option_of_config_as_json(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_TYPE", "RedisCache")
    monkeypatch.setenv("CACHE_REDIS_PORT", "70000")
    data = json_failure(runner.invoke(main, ["config", "--json"]), EXIT_CONFIG)
    assert data["problems"][0].startswith("CACHE_REDIS_PORT='70000'")


@pytest.mark.usefixtures("stopped_redis")
@pytest.mark.parametrize(
    "command", ["stats", "clear --all --yes", "clear --function app:f --yes", "stats --watch"]
)
def test_json_reports_a_stopped_server_as_json(runner: CliRunner, command: str) -> None:
    data = json_failure(runner.invoke(main, [*command.split(), "--json"]), EXIT_FAILED)
    assert "shared layer" in data["error"]


@pytest.mark.parametrize(
    "arguments",
    [["clear", "--json"], ["ping", "--count", "0", "--json"], ["clear", "--all", "--json"]],
    ids=["usage", "click-usage", "declined"],
)
def test_json_reports_usage_errors_and_a_declined_confirmation_as_json(
    runner: CliRunner, arguments: list[str]
) -> None:
    declined = "--all" in arguments
    result = runner.invoke(main, arguments, input="n\n")
    data = json_failure(result, EXIT_FAILED if declined else EXIT_CONFIG)
    assert ("not confirmed" if declined else "--") in data["error"]


def test_clear_all_json_counts_the_deleted_entries(runner: CliRunner, filled: redis.Redis) -> None:
    result = runner.invoke(main, ["clear", "--all", "--yes", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout) == {"ok": True, "all": True, "deleted": 5}
    assert filled.get("other_tenant") == b"keep me"


def test_clear_accepts_the_function_name_stats_lists(
    runner: CliRunner, filled: redis.Redis
) -> None:
    listed = json.loads(runner.invoke(main, ["stats", "--json"]).stdout)["stats"]["functions"]
    name = f"{__name__}.rates"
    assert listed[name] == 3
    result = runner.invoke(main, ["clear", "--function", name, "--yes", "--json"])
    assert json.loads(result.stdout) == {"ok": True, "function": name, "deleted": 3}
    assert filled.exists(PREFIX + users.cache_key(1))


# -- colour -----------------------------------------------------------------------------------


def run_on_a_terminal(arguments: list[str], env: dict[str, str]) -> str:
    """Run the CLI with its stdout on a pseudo-terminal; return what it printed."""
    import os
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "stratacache", *arguments],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    process.wait(timeout=60)
    return b"".join(chunks).decode()


@pytest.mark.subprocess
def test_ok_and_failed_are_coloured_on_a_terminal_unless_no_color(
    runner: CliRunner, make_redis_server: Callable[[], RedisServer]
) -> None:
    server = make_redis_server()
    server.stop()
    env = clean_env(CACHE_TYPE="RedisCacheNoExceptions", CACHE_REDIS_URL=server.url)
    env.pop("NO_COLOR", None)
    green_ok = click.style("ok", fg="green")
    red_failed = click.style("FAILED", fg="red", bold=True)
    assert red_failed in run_on_a_terminal(["ping"], env)
    assert green_ok in run_on_a_terminal(["ping"], clean_env())
    plain = run_on_a_terminal(["ping"], {**env, "NO_COLOR": "1"})
    assert "FAILED" in plain
    assert "\x1b[" not in plain
    assert "\x1b[" not in runner.invoke(main, ["ping"]).output  # not a terminal


# -- --app ------------------------------------------------------------------------------------


APP_MODULES = {
    "configured_app": """
import stratacache
stratacache.configure({"CACHE_TYPE": "SimpleCache", "CACHE_KEY_PREFIX": "in_code_"})
""",
    "stack_app": """
from stratacache import CacheStack
stack = CacheStack()
stack.configure({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": "cache-dir"})
def make_stack():
    return stack
""",
    "flask_app": """
from flask import Flask
from stratacache.flask import Cache
app = Flask(__name__)
app.config["CACHE_TYPE"] = "SimpleCache"
Cache(app)
""",
}


@pytest.fixture
def app_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Application modules in the working directory, forgotten by sys.modules after."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # --app puts the directory first
    for name, code in APP_MODULES.items():
        (tmp_path / f"{name}.py").write_text(code)
    yield
    for name in APP_MODULES:
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("app_modules")
@pytest.mark.parametrize(
    ("app", "backend"),
    [
        ("configured_app", "SimpleCache"),
        ("stack_app:stack", "FileSystemCache"),
        ("stack_app:make_stack", "FileSystemCache"),
        ("flask_app:app", "SimpleCache"),
    ],
)
def test_app_uses_the_stack_the_application_configured(
    runner: CliRunner, app: str, backend: str
) -> None:
    result = runner.invoke(main, ["--app", app, "ping", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["layers"]["shared"]["backend"] == backend
    assert runner.invoke(main, ["ping", "--json"]).exit_code == EXIT_OK  # without: NullCache
    assert "NullCache" in runner.invoke(main, ["ping"]).output


@pytest.mark.usefixtures("app_modules")
def test_app_config_shows_the_applications_settings(runner: CliRunner) -> None:
    data = json.loads(runner.invoke(main, ["--app", "configured_app", "config", "--json"]).stdout)
    assert data["CACHE_KEY_PREFIX"] == {"value": "in_code_", "source": "mapping"}


@pytest.mark.usefixtures("app_modules")
@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_such_module", "cannot import 'no_such_module'"),
        ("stack_app:nothing", "has no attribute 'nothing'"),
        ("flask_app:__name__", "is str, not a CacheStack"),
        ("flask_app:Flask", "calling 'flask_app:Flask' failed"),
    ],
)
def test_a_wrong_app_is_a_usage_error(runner: CliRunner, app: str, message: str) -> None:
    result = runner.invoke(main, ["--app", app, "ping"])
    assert result.exit_code == EXIT_CONFIG
    assert message in result.output


# -- stats --watch ----------------------------------------------------------------------------


def test_stats_watch_prints_a_line_per_interval(runner: CliRunner, filled: redis.Redis) -> None:
    result = runner.invoke(main, ["stats", "--watch", "--interval", "0.05", "--count", "3"])
    assert result.exit_code == EXIT_OK, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("shared layer: RedisCacheNoExceptions")
    assert lines[1].split() == ["TIME", "HITS", "MISSES", "HIT_RATIO", "ENTRIES", "OPS/S"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 3
    assert rows[0][4] == "5"  # the entries under the prefix
    assert rows[0][5] == "-"  # no rate before a second sample
    assert all(float(row[5]) >= 0 for row in rows[1:])
    watched = ["stats", "--watch", "--interval", "0.05", "--count", "2", "--json"]
    ticks = [json.loads(line) for line in runner.invoke(main, watched).stdout.splitlines()]
    assert [set(t) for t in ticks] == [
        {"time", "keyspace_hits", "keyspace_misses", "hit_ratio", "entries", "ops_per_sec"}
    ] * 2


def test_stats_watch_counts_the_lookups_per_second(
    runner: CliRunner, filled: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratacache.cli import _watch as cli

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # lookups by other processes between two samples
        sleeps.append(seconds)
        for _ in range(10):
            filled.get(PREFIX + "missing")

    monkeypatch.setattr(cli.time, "sleep", sleep)
    result = runner.invoke(main, ["stats", "--watch", "--count", "2", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    first, second = map(json.loads, result.stdout.splitlines())
    assert sleeps == [1.0]
    assert second["keyspace_misses"] - first["keyspace_misses"] >= 10
    assert second["ops_per_sec"] > 0


def test_stats_watch_stops_on_ctrl_c(runner: CliRunner, filled: redis.Redis) -> None:
    from stratacache.cli import _watch as cli

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli.time, "sleep", interrupted)
        result = runner.invoke(main, ["stats", "--watch"])
    assert result.exit_code == EXIT_OK, result.output
    assert len(result.output.splitlines()) == 3  # heading, columns, one line


def test_count_needs_watch(runner: CliRunner) -> None:
    result = runner.invoke(main, ["stats", "--count", "2"])
    assert result.exit_code == EXIT_CONFIG
    assert "add --watch" in result.output
