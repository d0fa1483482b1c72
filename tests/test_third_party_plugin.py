"""Backend discovery for real: build and install a separate package, then select its backend.

The package in ``examples/third_party_plugin`` (distribution ``stratacache-dictcache``), the
template of a third-party backend, declares ``DictCache`` in the entry-point group
``stratacache.backends``. pip builds it with hatchling and installs it into a temporary
directory, never into this virtual environment; each check runs in a fresh interpreter whose
``PYTHONPATH`` is that directory, and the package's own tests run there with ``pytest``, as
someone who copied the template would run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.subprocess

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "examples" / "third_party_plugin"
TIMEOUT = 60
"""Seconds any one subprocess may take."""

# Configures the stack from the environment, calls a cached function three times (the third
# after the local layer is emptied, so the shared backend itself must answer) and reports.
SELECT_AND_USE = """
import dataclasses, json, sys
import stratacache

stratacache.configure()
backend = stratacache.cache.shared_cache.cache
calls = []

@stratacache.cached_for(minutes=5)
def square(x):
    calls.append(x)
    return x * x

results = [square(7), square(7)]
stratacache.cache.local_cache.cache.clear()
results.append(square(7))
print(json.dumps({
    "module": type(backend).__module__,
    "class": type(backend).__qualname__,
    "file": sys.modules[type(backend).__module__].__file__,
    "is_backend": isinstance(backend, stratacache.Backend),
    "entries": len(backend),
    "results": results,
    "calls": calls,
    "installed": [dataclasses.asdict(b) for b in stratacache.installed_backends()],
}))
"""

CONFIGURE_EXPECTING_ERROR = """
import json
import stratacache

try:
    stratacache.configure()
except stratacache.ConfigurationError as exc:
    print(json.dumps({"message": str(exc), "problems": exc.problems}))
else:
    raise SystemExit("configure() accepted CACHE_TYPE=" + stratacache.cache.settings.cache_type)
"""

DICTCACHE_INFO = {
    "name": "DictCache",
    "target": "stratacache_dictcache:DictCache",
    "distribution": "stratacache-dictcache",
    "version": "0.1.0",
}


@dataclass(frozen=True)
class Plugin:
    """The built package: a pristine copy of its source tree and where it is installed."""

    source: Path
    site: Path


def clean_env(pythonpath: Path, **extra: str) -> dict[str, str]:
    """os.environ minus CACHE_*, LOCALCACHE_*, PIP_*, PYTEST_*, PYTHONPATH; plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("CACHE_", "LOCALCACHE_", "PIP_", "PYTEST_"))
        and k.upper() != "PYTHONPATH"
    }
    env.update(PYTHONPATH=str(pythonpath), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``args``; fail the test on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(args[:4])} exited with {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def run_json(code: str, env: dict[str, str], cwd: Path) -> Any:
    return json.loads(run(["-c", code], env, cwd).stdout)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    """Build and install the package once, offline, into a temporary target directory."""
    root = tmp_path_factory.mktemp("third_party_plugin")
    source = root / "source"
    shutil.copytree(
        PLUGIN_SOURCE,
        source,
        ignore=shutil.ignore_patterns(
            "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info", "build", "dist"
        ),
    )
    site = root / "site"
    run(
        [
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(site),
            str(source),
        ],
        clean_env(root, PIP_CONFIG_FILE=os.devnull),
        cwd=root,
        timeout=120,
    )
    assert (site / "stratacache_dictcache" / "__init__.py").is_file()
    assert list(site.glob("stratacache_dictcache-0.1.0.dist-info"))
    return Plugin(source=source, site=site)


def assert_dictcache_serves(report: dict[str, Any], origin: Path) -> None:
    """The shared layer is the plugin's DictCache, loaded from ``origin``, and it hits."""
    assert (report["module"], report["class"]) == ("stratacache_dictcache", "DictCache")
    assert Path(report["file"]).is_relative_to(origin), report["file"]
    assert report["is_backend"] is True
    assert report["results"] == [49, 49, 49]
    assert report["calls"] == [7], "the second and third calls should have been cache hits"
    assert report["entries"] >= 1


def test_selected_by_entry_point_name(plugin: Plugin, tmp_path: Path) -> None:
    report = run_json(SELECT_AND_USE, clean_env(plugin.site, CACHE_TYPE="DictCache"), tmp_path)

    assert_dictcache_serves(report, plugin.site)
    assert DICTCACHE_INFO in report["installed"]
    assert {"SimpleCache", "NullCache"} <= {b["name"] for b in report["installed"]}


@pytest.mark.parametrize(
    "target",
    ["stratacache_dictcache.DictCache", "stratacache_dictcache:DictCache"],
    ids=["module.Class", "module:Class"],
)
@pytest.mark.parametrize("location", ["installed", "importable-only"])
def test_selected_by_dotted_path(
    plugin: Plugin, tmp_path: Path, target: str, location: str
) -> None:
    # "importable-only" puts the bare source on the path: no distribution, no entry point.
    path = plugin.site if location == "installed" else plugin.source / "src"
    report = run_json(SELECT_AND_USE, clean_env(path, CACHE_TYPE=target), tmp_path)

    assert_dictcache_serves(report, path)
    names = {b["name"] for b in report["installed"]}
    assert ("DictCache" in names) is (location == "installed")


def test_cli_lists_the_backend_as_json(plugin: Plugin, tmp_path: Path) -> None:
    result = run(["-m", "stratacache", "backends", "--json"], clean_env(plugin.site), tmp_path)

    listed = json.loads(result.stdout)
    assert DICTCACHE_INFO in listed
    assert all(set(entry) >= set(DICTCACHE_INFO) for entry in listed)


def test_cli_lists_the_backend_in_its_table(plugin: Plugin, tmp_path: Path) -> None:
    result = run(["-m", "stratacache", "backends"], clean_env(plugin.site), tmp_path)

    rows = [line for line in result.stdout.splitlines() if "DictCache" in line]
    assert rows, result.stdout
    row = rows[0]
    for cell in DICTCACHE_INFO.values():
        assert cell in row, (cell, row)


def test_the_package_own_tests_pass_against_the_installed_copy(plugin: Plugin) -> None:
    # `pytest` with no argument, from the package's own directory, as its README says: its
    # pyproject.toml makes it pytest's rootdir (this repository's conftest.py and settings
    # stay out) and names tests/. The source's src/ is not on the path: the tests import the
    # installed copy, and find the backend through its installed entry point.
    result = run(
        ["-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:asyncio"],
        clean_env(plugin.site),
        cwd=plugin.source,
    )

    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed, result.stdout
    assert int(passed.group(1)) >= 20, summary
    assert not re.search(r"failed|error|skipped", summary), summary
    assert "tests/test_conformance.py::TestDictCache::" in result.stdout
    for name in (
        "test_selected_by_its_entry_point_name",
        "test_serves_as_the_shared_layer",
        "test_payloads_are_signed_with_the_secret_key",
    ):
        assert f"tests/test_conformance.py::{name} PASSED" in result.stdout


def test_misspelt_name_suggests_the_plugin(plugin: Plugin, tmp_path: Path) -> None:
    report = run_json(
        CONFIGURE_EXPECTING_ERROR, clean_env(plugin.site, CACHE_TYPE="DictCach"), tmp_path
    )

    assert len(report["problems"]) == 1
    problem = report["problems"][0]
    assert problem.startswith("CACHE_TYPE='DictCach': unknown cache backend 'DictCach'"), problem
    assert "Did you mean 'DictCache'?" in problem
    installed = re.search(r"Installed backends: ([^.]+)\.", problem)
    assert installed, problem
    assert {"DictCache", "SimpleCache", "NullCache"} <= set(installed.group(1).split(", "))
    assert problem in report["message"]
