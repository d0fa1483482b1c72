"""The documentation works: its Python examples run, its generated pages are current.

Every block fenced ```` ```python ```` in README.md and in ``docs/**/*.md`` runs in a fresh
interpreter, in an empty working directory, with no ``CACHE_*`` variable set: on the embedded
default (a SimpleCache local layer, nothing shared). A block indented in a tab or an admonition
is dedented first. An HTML comment on the line just above the fence (indented like it) changes
that; it does not show on the site:

- ``<!-- docs-test: redis -->``: the block runs with ``CACHE_REDIS_URL`` set to the URL of the
  test session's redis-server (emptied first), so it configures a Redis backend as a
  deployment does, from the environment;
- ``<!-- docs-test: skip -->``: the block is not run, only compiled (keep this for code that
  cannot run anywhere, such as a fragment of a larger program, and say why next to it).

Blocks in other fences (``bash``, ``toml``, ``text``...) are never run.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import pytest

from .conftest import ROOT, clean_env, root_pythonpath, run_python

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(
    r"(?:^[ \t]*<!-- docs-test: (?P<mark>[a-z]+) -->\n)?"
    r"^(?P<indent>[ \t]*)```python(?:[ \t][^\n]*)?\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
MARKS = {None, "redis", "skip"}


class Example(NamedTuple):
    where: str
    code: str
    mark: str | None


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        name = page.relative_to(ROOT).as_posix()
        for number, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
            code = textwrap.dedent(match["code"])
            found.append(Example(f"{name}#{number}", code, match["mark"]))
    return found


EXAMPLES = examples()


RUN = [example for example in EXAMPLES if example.mark != "skip"]
NOT_RUN = [example for example in EXAMPLES if example.mark == "skip"]


@pytest.mark.subprocess
@pytest.mark.parametrize("example", RUN, ids=[e.where for e in RUN])
def test_python_examples_run(
    example: Example, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert example.mark in MARKS, f"{example.where}: unknown docs-test mark {example.mark!r}"
    extra = {"PYTHONPATH": root_pythonpath()}
    if example.mark == "redis":
        extra["CACHE_REDIS_URL"] = request.getfixturevalue("redis_url")
    run_python(example.code, env=clean_env(**extra), cwd=tmp_path)


@pytest.mark.parametrize("example", NOT_RUN, ids=[e.where for e in NOT_RUN])
def test_python_examples_not_run_still_compile(example: Example) -> None:
    """A block marked ``skip`` is not run, but it is Python (a fragment may be indented)."""
    compile(example.code, example.where, "exec")


def test_examples_are_found_everywhere() -> None:
    where = {e.where.partition("#")[0] for e in EXAMPLES}
    assert "README.md" in where
    assert any(w.startswith("docs/backends/") for w in where), "docs/ is searched recursively"


def test_every_mark_sits_just_above_a_python_block() -> None:
    for page in PAGES:
        name = page.relative_to(ROOT).as_posix()
        marked = sum(1 for e in EXAMPLES if e.where.startswith(f"{name}#") and e.mark)
        assert page.read_text().count("<!-- docs-test:") == marked, (
            f"{name}: a <!-- docs-test: ... --> comment must be the line just above a"
            " ```python fence, or it changes nothing"
        )


def _generator(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_generated_from_the_model() -> None:
    render = _generator("generate_configuration").render
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
    # The product first: the layers and signing on, never the unsigned-pickle warning.
    assert out.startswith("shared layer: FileSystemCache(")
    assert "signing:      on" in out
    assert "without a signature" not in result.stderr
    assert not result.stderr.strip(), result.stderr
    assert out.count("computing exchange_rates('EUR')") == 2
    assert "answered by the local layer" in out
    assert "answered by the shared layer" in out
    assert "same object both times: True" in out
    assert "clear_cache() removed 4 entries" in out
    assert "6. What cache.stats() counted:" in out
    assert "exchange_rates: 2 local hits, 1 shared hits, 4 misses, 4 computations" in out


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
