"""Run Flask-Caching's and cachelib's own test suites against stratacache (``make compat``).

Steps, each into ``build/compat`` (nothing of it is committed):

1. ``pip download --no-binary :all: --no-deps flask-caching cachelib``: the released sdists;
2. a virtual environment of its own, ``build/compat/venv``, with this project (editable, with
   the ``flask`` and ``redis`` extras), the two sdists and their suites' test dependencies
   (pytest, pytest-xprocess, asgiref for ``flask[async]``), so our ``.venv`` is untouched;
3. the sdists unpacked into ``build/compat/src``; their tests' Redis port (6360) is replaced
   by a free port, on which a ``redis-server --save ''`` of our own runs for the length of
   the run (never 6379);
4. each suite run with ``-p adapter`` (:mod:`compat.adapter`), which swaps their classes for
   ours and records every outcome in ``build/compat/results/<suite>.json``;
5. :mod:`compat.report` classifies every test that did not pass and writes
   ``docs/compatibility.md``.

``--report-only`` skips 1-4 and renders the page from the results of the last run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "compat"
VENV = BUILD / "venv"
PYTHON = VENV / "bin" / "python"
SOURCES = BUILD / "src"
RESULTS = BUILD / "results"
PEERS = {"flask-caching": "flask_caching", "cachelib": "cachelib"}
"""Each peer's name on PyPI and the prefix of its sdist."""
THEIR_REDIS_PORT = "6360"
TEST_DEPENDENCIES = ["pytest", "pytest-xprocess", "asgiref"]


def main(argv: list[str] | None = None) -> int:
    """Run the suites (unless ``--report-only``) and write ``docs/compatibility.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="render the last results")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from compat.report import write_report
    from tests.redis_server import RedisServer

    if not args.report_only:
        sdists = download()
        environment(sdists)
        suites = unpack(sdists)
        server = RedisServer(BUILD / "redis")  # the suite's own: a free port, no persistence
        rewrite_port(suites, server.port)
        server.start()
        try:
            for name, directory in suites.items():
                run_suite(name, directory)
        finally:
            server.stop()

    page = write_report(RESULTS, ROOT / "docs" / "compatibility.md")
    print(f"wrote {page.relative_to(ROOT)}")
    return 0


def download() -> dict[str, Path]:
    """Download the peers' released sdists (once); return each one's archive."""
    BUILD.mkdir(parents=True, exist_ok=True)
    found = _sdists()
    if len(found) < len(PEERS):
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"),
                *("--dest", str(BUILD), *PEERS),
            ],
            check=True,
        )
        found = _sdists()
    missing = set(PEERS) - set(found)
    if missing:
        raise SystemExit(f"pip download gave no sdist for {', '.join(sorted(missing))}")
    return found


def _sdists() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, prefix in PEERS.items():
        archives = sorted(BUILD.glob(f"{prefix}-*.tar.gz"))
        if archives:
            found[name] = archives[-1]
    return found


def environment(sdists: dict[str, Path]) -> None:
    """Create ``build/compat/venv`` with our project, the peers and their test dependencies."""
    stamp = VENV / ".installed"
    wanted = "\n".join(sorted(p.name for p in sdists.values()))
    if stamp.exists() and stamp.read_text() == wanted:
        return
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run(
        [*pip, "-e", f"{ROOT}[flask,redis]", *TEST_DEPENDENCIES, *map(str, sdists.values())],
        check=True,
    )
    stamp.write_text(wanted)


def unpack(sdists: dict[str, Path]) -> dict[str, Path]:
    """Unpack each sdist afresh into ``build/compat/src``; return each suite's directory."""
    shutil.rmtree(SOURCES, ignore_errors=True)
    SOURCES.mkdir(parents=True)
    suites = {}
    for name, archive in sdists.items():
        with tarfile.open(archive) as tar:
            tar.extractall(SOURCES, filter="data")
        suites[name] = SOURCES / archive.name.removesuffix(".tar.gz")
    return suites


def rewrite_port(suites: dict[str, Path], port: int) -> None:
    """Point the peers' Redis tests (their port 6360) at our server's port."""
    for directory in suites.values():
        for path in (directory / "tests").rglob("*.py"):
            text = path.read_text()
            if THEIR_REDIS_PORT in text:
                path.write_text(text.replace(THEIR_REDIS_PORT, str(port)))


def run_suite(name: str, directory: Path) -> None:
    """Run one peer's suite with the adapter; its outcomes go to ``results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        # Their fixtures then use the server we started instead of starting one on 6360.
        "CI": "true",
        "COMPAT_RESULTS": str(RESULTS / f"{name}.json"),
        "PYTHONPATH": str(ROOT / "compat"),
    }
    command = [str(PYTHON), "-m", "pytest", "-p", "adapter", "-q", "--tb=no"]
    # A module importing a driver we do not ship (pymongo, boto3) is recorded and classified.
    command += ["--continue-on-collection-errors"]
    command += ["-o", f"cache_dir={BUILD / 'pytest-cache' / name}", "tests"]
    print(f"{name}: {' '.join(command[3:])} (in {directory.relative_to(ROOT)})", flush=True)
    # Failures are what is measured: the exit status is not an error here.
    subprocess.run(command, cwd=directory, env=env, check=False)


if __name__ == "__main__":
    sys.exit(main())
