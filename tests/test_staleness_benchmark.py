"""The 3-process staleness run (``benchmarks/staleness.py``): its arithmetic, and a smoke run.

The smoke run starts a redis-server and 3 real processes (60 changes); it takes 5-10 s on
the shared machine, most of it the 3 interpreters starting. No time is asserted but the
correctness bound: no reader returns a value more than 1 s after a change replaced it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, clean_env

sys.path.insert(0, str(ROOT / "benchmarks"))

from staleness import windows


def test_a_window_ends_at_the_last_old_read_of_any_reader() -> None:
    changes = [
        {"keys": [0], "version": 2, "kind": "set", "at": 10.0},
        {"keys": [0, 1], "version": 3, "kind": "clear_cache", "at": 20.0},
    ]
    first = [[[1, 0.0, 10.030], [2, 10.031, 20.0], [3, 20.0, 30.0]], [[1, 0.0, 30.0]]]
    second = [[[1, 0.0, 10.002], [2, 10.003, 20.5], [3, 20.6, 30.0]], [[3, 19.0, 30.0]]]
    figures = windows(changes, [first, second])
    assert figures["window_ms_max"] == pytest.approx(10_000)  # key 1 never left version 1
    assert figures["by_kind_ms_max"]["set"] == pytest.approx(30)  # the slower reader
    assert figures["changes_past_target"] == 1
    assert figures["changes_past_1s"] == 1


def test_a_read_before_the_change_returned_is_not_stale() -> None:
    changes = [{"keys": [0], "version": 5, "kind": "invalidate", "at": 1.0}]
    figures = windows(changes, [[[[4, 0.0, 0.999], [5, 1.0, 2.0]]]])
    assert figures["window_ms_max"] == 0
    assert figures["changes_past_target"] == 0


@pytest.mark.subprocess
def test_smoke_run_of_three_processes(tmp_path: Path) -> None:
    out = tmp_path / "staleness.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "invalidation.py"), "--staleness"]
    result = subprocess.run(
        [*command, "--smoke", "--json", str(out)],
        env=clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    print(result.stdout)
    assert figures["changes"] == 60
    assert set(figures["by_kind_ms_max"]) == {"set", "invalidate", "clear_cache"}
    assert figures["reads"] > 60
    assert 0 <= figures["window_ms_p50"] <= figures["window_ms_p99"] <= figures["window_ms_max"]
    assert figures["changes_past_1s"] == 0
    assert figures["reader_flushes_after_loss"] == 0
    assert (figures["topology"], figures["async"], len(figures["each"])) == ("single", False, 60)
    assert "staleness, single, 3 processes, 60 changes" in result.stdout


@pytest.mark.subprocess
def test_cost_smoke_run_counts_redis_commands_with_three_subscribers(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "invalidation_cost.py"), "--smoke"]
    result = subprocess.run(
        [*command, "--topology", "single", "--json", str(out)],
        env=clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    figures = json.loads(out.read_text())["single"]
    cases = figures["cases"]
    assert set(cases) == {
        f"{kind} | {label}"
        for kind in ("f.set", "cache.set")
        for label in ("off", "on, 0 others", "on, 3 others")
    }
    for kind in ("f.set", "cache.set"):
        assert cases[f"{kind} | off"].get("cmd_publish", 0) == 0
        for label in ("on, 0 others", "on, 3 others"):
            assert cases[f"{kind} | {label}"]["cmd_publish"] == pytest.approx(1)  # one a write
        assert cases[f"{kind} | on, 3 others"]["redis_cpu_us"] > 0
    # Each subscriber process received the messages of the shared prefix's writes (both
    # kinds, the warm-up's included), and none of the other prefix's.
    writes = figures["writes"] * figures["rounds"] + 50
    assert figures["received"] == [2 * writes] * 3
