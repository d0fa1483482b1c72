"""The benchmarks run end to end in smoke mode, so they never rot (no time is asserted)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, clean_env
from .redis_server import RedisServer

CASES = {
    "local_hit": "local hit",
    "no_serializer_local_hit": "no-serializer local hit",
    "stats_cost": "statistics cost",
    "freshness_hit": "local hit with the entry envelope",
    "refresh_hit": "hit during a refresh",
    "shared_hit": "shared hit",
    "two_layer": "two-layer steady state",
    "three_tier": "three-tier steady state",
    "miss_write": "miss + write",
    "at_most_once": "at_most_once hit",
    "restricted_unpickler": "shared hit, restricted unpickler",
    "file_cache": "file cache",
    "payload": "payload size",
    "growth": "growth",
    "concurrency": "concurrency",
    "memory": "memory",
    "cluster_hit": "Cluster shared hit",
    "sentinel_hit": "Sentinel shared hit",
    "cluster_throughput": "Cluster concurrency",
    "async_local_hit": "async local hit",
    "async_shared_hit": "async shared hit",
    "async_throughput": "async shared-hit throughput",
}
FIGURES = {"median", "p99", "min", "max", "runs", "ratio"}


def run_benchmarks(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/run.py`` with ``args`` from the root, in a clean environment."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), *args],
        env=clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.subprocess
def test_smoke_run_writes_every_case_with_figures_tables_and_chart(tmp_path: Path) -> None:
    result = run_benchmarks("--smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr

    data = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert data["smoke"] is True
    env = data["environment"]
    assert env["python"] == sys.version.split()[0]
    assert env["cpu_count"] >= 1
    assert re.fullmatch(r"\d+\.\d+\.\d+", env["redis_server"])
    for package in ("stratacache", "redis", "cachetools", "cachelib", "diskcache"):
        assert env["versions"][package], package
    # The three-tier case is skipped, and says so, only on a core without CACHE_LAYERS.
    skipped = data["skipped"]
    assert set(skipped) <= {"three_tier"}
    for why in skipped.values():
        assert why.startswith("skipped: this stratacache core has no CACHE_LAYERS"), why
        assert f"three-tier steady state: {why}" in result.stderr
    measured = {case_id: title for case_id, title in CASES.items() if case_id not in skipped}
    assert list(data["cases"]) == list(measured)
    for case_id, title in measured.items():
        case = data["cases"][case_id]
        assert case["title"] == title
        assert case["tables"], case_id
        for table in case["tables"]:
            assert table["anchor"] in table["figures"]
            for name, figures in table["figures"].items():
                assert set(figures) == FIGURES, (case_id, name)
                assert figures["runs"] >= 1
                assert figures["min"] <= figures["median"] <= figures["max"]
                assert figures["median"] > 0
        assert case["checks"], case_id
        assert all(isinstance(c["met"], bool) for c in case["checks"])
    assert data["cases"]["growth"]["notes"]["clear_cache_commands"].get("keys", 0) == 0
    # The topology family started a real Cluster and Sentinel set, and measured each count.
    for case_id in ("cluster_hit", "sentinel_hit"):
        assert data["cases"][case_id]["notes"]["start_seconds"] > 0, case_id
    assert len(data["cases"]["cluster_throughput"]["tables"]) == 4

    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    for title in measured.values():  # the verdict first, where a narrow column shows it
        row = rf"^\| (met|\*\*missed\*\*) \| {re.escape(title)} \| .+ \| \d+\.\d+x \| .+ \|$"
        assert re.search(row, markdown, re.MULTILINE), title
    for case_id, why in skipped.items():
        assert f"- Not measured: {CASES[case_id]}: {why}" in markdown
    tables = sum(len(case["tables"]) for case in data["cases"].values())
    assert markdown.count("| contender | ratio | median | p99 | runs |") == tables

    chart = tmp_path / "benchmarks.png"
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # The stored run renders again, without measuring, to the same page.
    again = tmp_path / "again"
    result = run_benchmarks("--render", str(tmp_path / "results.json"), "--out", str(again))
    assert result.returncode == 0, result.stderr
    assert (again / "results.md").read_text(encoding="utf-8") == markdown
    assert (again / "benchmarks.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.subprocess
def test_stats_cost_smoke_run_compares_stats_on_and_off(tmp_path: Path) -> None:
    out = tmp_path / "stats_cost.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "stats_cost.py"), "--smoke", "--json", str(out)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for kind in ("cached_for (SimpleCache)", "cached_for (no serialization)"):
        assert re.search(rf"^{re.escape(kind)}: stats on / off = \d+\.\d+x", result.stdout, re.M)
    figures = json.loads(out.read_text())["results"]
    assert set(figures) == {
        f"{kind}, {stats}"
        for kind in ("cached_for (SimpleCache)", "cached_for (no serialization)")
        for stats in ("stats on", "CACHE_STATS off")
    }
    assert figures["cached_for (SimpleCache), CACHE_STATS off"]["ratio_to_anchor"] == 1.0


@pytest.mark.subprocess
def test_callgrind_mode_counts_instructions_per_call(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:  # fail, never skip: the mode must keep working
        pytest.fail("valgrind is not installed; `apt-get install valgrind` (3.19 or later)")
    command = [sys.executable, str(ROOT / "benchmarks" / "callgrind.py"), "--only", "cachetools"]
    result = subprocess.run(
        [*command, "--calls", "200", "--repeats", "1", "--out", str(tmp_path)],
        env=clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    data = json.loads((tmp_path / "callgrind.json").read_text(encoding="utf-8"))
    assert data["calls"] == 200
    assert list(data["results"]) == ["cachetools.cached(TTLCache)"]
    figures = data["results"]["cachetools.cached(TTLCache)"]
    (with_calls,), (without,) = figures["ir_total_with_calls"], figures["ir_total_without_calls"]
    assert with_calls > without > 0
    assert figures["ir_per_call"] == [(with_calls - without) / 200]
    assert figures["ir_per_call"][0] > 0
    assert figures["ratio_to_cachetools"] == 1.0
    assert figures["native_ns_per_call_median"] > 0
    row = r"^\| cachetools\.cached\(TTLCache\) \| [\d,]+\.\d \| 0\.000% \| 1\.00x \| [\d,]+ \|$"
    assert re.search(row, result.stdout, re.MULTILINE), result.stdout
    assert (tmp_path / "callgrind.md").read_text(encoding="utf-8") in result.stdout


@pytest.mark.subprocess
@pytest.mark.parametrize("contender", ["raw", "raw_read", "ours"])
def test_callgrind_write_script_runs_each_contender(
    tmp_path: Path, redis_server: RedisServer, contender: str
) -> None:
    # The script callgrind_write.py counts under valgrind, run natively: valgrind's own
    # part is callgrind.py's, tested above, and a counted run takes minutes.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import callgrind_write
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    script = callgrind_write.write_script(tmp_path / "miss_write.py")
    redis_server.client().flushdb()
    result = subprocess.run(
        [sys.executable, str(script), "20", contender, str(redis_server.port)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert redis_server.client().dbsize() >= 70, "every call (50 warm-up, 20 counted) wrote"
