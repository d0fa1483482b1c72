"""The documentation works: its Python examples run, its generated pages are current."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, clean_env, run_python

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, block in enumerate(BLOCK.findall(page.read_text()), start=1):
            found.append((f"{page.name}#{number}", block))
    return found


@pytest.mark.subprocess
@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_python_examples_run(where: str, code: str, tmp_path: Path) -> None:
    run_python(code, env=clean_env(PYTHONPATH=str(ROOT)), cwd=tmp_path)


def test_configuration_reference_is_generated_from_the_model() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from generate_configuration import render
    finally:
        sys.path.remove(str(ROOT / "docs"))
    assert (ROOT / "docs" / "configuration.md").read_text() == render(), (
        "regenerate: .venv/bin/python docs/generate_configuration.py > docs/configuration.md"
    )


@pytest.mark.subprocess
def test_quickstart_demo(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert out.count("computing exchange_rates('EUR')") == 2
    assert "answered by the local layer" in out
    assert "answered by the shared layer" in out
    assert "same object both times: True" in out
    assert "clear_cache() removed 4 entries" in out


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("local_hit.py", "stratacache cached_for (SimpleCache)"),
        ("shared_hit.py", "stratacache cached_for (RedisCacheNoExceptions)"),
    ],
)
def test_benchmarks_run_in_smoke_mode(script: str, expected: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--json", str(out)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio to" in result.stdout
    figures = json.loads(out.read_text())
    assert expected in figures["results"]
    assert figures["environment"]["cpu_count"]
