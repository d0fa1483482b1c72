"""What users install: the wheel, the sdist, the README that is also the PyPI page.

The wheel ships both ``py.typed`` markers and the LICENSE, and publishes no development
extra. The sdist is a complete checkout: it is built (with hatchling, no network), unpacked,
and a smoke subset runs from the unpacked copy: the demo, the docs build, a few test files,
and the collection of the whole suite, which must find the same tests as this checkout. The
README has no relative link (they break on PyPI): its links derive from the one ``docs_url``
setting of ``pyproject.toml``. Runtime messages never point at a repository path.
"""

from __future__ import annotations

import ast
import email
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT, clean_env

TIMEOUT = 240
"""Seconds any one subprocess may take."""

SDIST_FILES = [
    "Makefile",
    "mkdocs.yml",
    "noxfile.py",
    ".ci/run",
    "LICENSE",
    "README.md",
    "pyproject.toml",
]


def readme_links() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_readme_links", ROOT / "docs" / "generate_readme_links.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(kind: str, directory: Path) -> Path:
    """Build the ``wheel`` or ``sdist`` of this checkout into ``directory``; return its path."""
    code = f"import hatchling.build as b; print(b.build_{kind}({str(directory)!r}))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return directory / result.stdout.strip().splitlines()[-1]


# -- the wheel ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout."""
    return build("wheel", tmp_path_factory.mktemp("wheel"))


@pytest.mark.subprocess
def test_the_wheel_ships_the_typing_markers_and_the_license(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(archive.read(metadata))
    assert {"stratacache/py.typed", "stratacache_plugins/py.typed"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert message["License-Expression"] == "MIT"
    # Development tools are dependency groups: users see only the extras meant for them.
    assert sorted(message.get_all("Provides-Extra") or []) == [
        "flask",
        "otel",
        "prometheus",
        "redis",
        "testing",
    ]


TYPED_IMPORTS = """\
from stratacache import cached_for
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.simple import SimpleCache

cache: FileSystemCache = FileSystemCache("/tmp/never-created")
local: SimpleCache = SimpleCache()
"""


@pytest.mark.subprocess
def test_mypy_strict_reads_the_installed_packages(wheel: Path, tmp_path: Path) -> None:
    # The imports the docs show, checked against the wheel installed in a fresh venv (without
    # py.typed, mypy --strict reports import-untyped on stratacache_plugins).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site_packages] = venv.glob("lib/python3*/site-packages")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site_packages)
    (tmp_path / "snippet.py").write_text(TYPED_IMPORTS)
    python = str(venv / "bin" / "python")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-executable", python, "snippet.py"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_license_is_mit() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The stratacache developers\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert "dev" in project["dependency-groups"]
    assert "dev" not in project["project"]["optional-dependencies"]


# -- the sdist ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist of this checkout, built and unpacked; return the unpacked directory."""
    where = tmp_path_factory.mktemp("sdist")
    with tarfile.open(build("sdist", where)) as archive:
        archive.extractall(where / "unpacked", filter="data")
    [unpacked] = (where / "unpacked").iterdir()
    return unpacked


def run_in(tree: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``tree``, importing the package from that tree's sources."""
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "core"), str(tree / "plugins")])
    env["NO_MKDOCS_2_WARNING"] = "1"
    return subprocess.run(
        list(command),
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.subprocess
def test_the_sdist_holds_what_make_and_the_docs_need(sdist: Path) -> None:
    missing = [name for name in SDIST_FILES if not (sdist / name).is_file()]
    assert not missing, f"the sdist lacks {missing}: add them to [tool.hatch.build.targets.sdist]"
    assert os.access(sdist / ".ci" / "run", os.X_OK), ".ci/run keeps its executable bit"
    dry_run = subprocess.run(
        ["make", "-n", "demo", "test"], cwd=sdist, capture_output=True, text=True, check=False
    )
    assert dry_run.returncode == 0, dry_run.stderr


@pytest.mark.subprocess
def test_the_demo_runs_from_the_sdist(sdist: Path) -> None:
    result = run_in(sdist, sys.executable, "examples/quickstart.py")
    assert result.returncode == 0, result.stderr
    assert "answered by the shared layer" in result.stdout


@pytest.mark.subprocess
def test_the_docs_build_from_the_sdist(sdist: Path, tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.fail(f"mkdocs is not installed next to {sys.executable}: the dev group has it")
    result = run_in(sdist, mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.subprocess
def test_fast_tests_pass_from_the_sdist(sdist: Path) -> None:
    files = ["tests/test_import_cost.py", "tests/test_filesystem.py", "tests/test_keys.py"]
    result = run_in(sdist, sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"\d+ passed", result.stdout)


@pytest.mark.subprocess
def test_the_sdist_collects_the_whole_suite(sdist: Path) -> None:
    def collected(tree: Path) -> set[str]:
        command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        result = run_in(tree, *command)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return {line for line in result.stdout.splitlines() if "::" in line}

    here, there = collected(ROOT), collected(sdist)
    assert len(here) > 1000
    assert here == there, f"missing from the sdist: {sorted(here - there)[:20]}"


# -- the README, which is also the PyPI page ----------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]*)\)|^\[[^\]]+\]:\s*(?P<ref>\S+)", re.M)
HTML_REFERENCE = re.compile(r"<(?:a|img)\b[^>]*\b(?:href|src)=\"(?P<target>[^\"]*)\"", re.I)


def test_the_readme_has_no_relative_link() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = [m["target"] or m["ref"] for m in LINK.finditer(readme)]
    targets += [m["target"] for m in HTML_REFERENCE.finditer(readme)]
    relative = [t for t in targets if not t.startswith(("https://", "http://"))]
    assert not relative, f"README links that break on PyPI: {relative}"


def test_the_readme_links_derive_from_docs_url() -> None:
    generator = readme_links()
    readme = (ROOT / "README.md").read_text()
    assert generator.render(readme, generator.docs_url()) == readme, (
        "regenerate: .venv/bin/python docs/generate_readme_links.py"
    )


def test_each_docs_mention_names_an_existing_page_by_its_title() -> None:
    generator = readme_links()
    mentions = list(generator.MENTION.finditer((ROOT / "README.md").read_text()))
    assert len(mentions) > 20
    for mention in mentions:
        page = mention["page"].partition("#")[0]
        path = ROOT / "docs" / page
        assert path.is_file(), f"the README names docs/{page}, which does not exist"
        if page.endswith(".md"):
            lines = path.read_text().splitlines()
            if lines[0] == "---":  # front matter (search boost...): the title follows it
                lines = lines[lines.index("---", 1) + 1 :]
            title = next(line for line in lines if line.startswith("# ")).removeprefix("# ")
            text = generator.text_of(mention["inner"])
            assert text == title, f"the mention of {page} names it {text!r}, not {title!r}"


def test_no_readme_line_starts_with_a_comment() -> None:
    # In Markdown a line starting with "<!--" opens an HTML block: the rest is not text.
    lines = (ROOT / "README.md").read_text().splitlines()
    starting = [n for n, line in enumerate(lines, 1) if re.match(r"\s*(?:[-*] )?<!--", line)]
    assert not starting, f"README lines {starting} start with an HTML comment"


def test_a_docs_url_turns_every_mention_into_a_link_and_back() -> None:
    generator = readme_links()
    readme = (ROOT / "README.md").read_text()
    linked = generator.render(readme, "https://example.org/stratacache/")
    assert "[Tier specs: `CACHE_LAYERS`](https://example.org/stratacache/layers/)" in linked
    assert "(https://example.org/stratacache/backends/)" in linked
    assert "(https://example.org/stratacache/performance/#what-the-misses-mean)" in linked
    assert "![Ratio of each stratacache contender" in linked
    assert "](https://example.org/stratacache/benchmarks.png)" in linked
    assert "*<!-- docs: index.md -->[stratacache](https://example.org/stratacache/)" in linked
    assert generator.render(linked, "") == readme


# -- runtime messages ---------------------------------------------------------------------

REPOSITORY_PATH = re.compile(r"\bdocs/|\b[\w-]+\.md\b")


def test_no_message_points_at_a_repository_path() -> None:
    # A wheel user has no docs/ directory: messages name the docs page by its title.
    found = []
    for package in ("core/stratacache", "plugins/stratacache_plugins"):
        for path in sorted((ROOT / package).rglob("*.py")):
            texts = [
                n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            ]
            found += [
                f"{path.relative_to(ROOT)}:{n.lineno}"
                for n in texts
                if isinstance(n.value, str) and REPOSITORY_PATH.search(n.value)
            ]
    assert not found, f"strings naming a repository path: {found}"
