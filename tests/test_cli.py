"""The operator CLI: backends and config, with tables, JSON and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from stratacache.cli import EXIT_CONFIG, main

from .conftest import clean_env


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
