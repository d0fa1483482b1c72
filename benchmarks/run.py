"""Run every benchmark case of the issue side by side, and write JSON, Markdown and a chart.

    .venv/bin/python benchmarks/run.py                  # full run, a few minutes; updates docs/
    .venv/bin/python benchmarks/run.py --smoke          # tiny counts, seconds; what CI runs
    .venv/bin/python benchmarks/run.py --only local_hit,shared_hit --out /tmp/bench
    .venv/bin/python benchmarks/run.py --callgrind      # instructions per call instead
    .venv/bin/python benchmarks/run.py --render docs/benchmarks.json --publish  # no measuring

It starts its own redis-server on a free loopback port (and, for the Cluster and Sentinel
cases, a Redis Cluster and a Sentinel set, started once and stopped at the end) and writes
``results.json``, ``results.md`` and ``benchmarks.png`` into ``--out`` (default
``benchmarks/results``). A full run of every case also writes ``docs/benchmarks.md``,
``docs/benchmarks.png`` and ``docs/benchmarks.json`` (its figures, kept so that ``--render``
can write the page and the chart again, after a change of ``report.py``, without measuring).

``--callgrind`` runs ``benchmarks/callgrind.py`` instead (with ``--smoke`` and ``--out``): the
instructions per call of the local hits, counted by valgrind's callgrind, which do not drift
with the machine's load; it writes ``callgrind.json`` and ``callgrind.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

import callgrind  # noqa: E402
import cases_async  # noqa: E402
import cases_async_shared  # noqa: E402
import cases_concurrency  # noqa: E402
import cases_file  # noqa: E402
import cases_growth  # noqa: E402
import cases_local  # noqa: E402
import cases_memory  # noqa: E402
import cases_payload  # noqa: E402
import cases_shared  # noqa: E402
import cases_stats  # noqa: E402
import cases_topology  # noqa: E402
import cases_unpickler  # noqa: E402
import cases_write  # noqa: E402
import report  # noqa: E402
from harness import environment  # noqa: E402
from model import CASE_TITLES, CaseResult, Context  # noqa: E402

from tests.redis_server import INSTALL_HINT, RedisServer  # noqa: E402

FAMILIES: tuple[ModuleType, ...] = (
    cases_local,
    cases_async,
    cases_async_shared,
    cases_stats,
    cases_shared,
    cases_unpickler,
    cases_write,
    cases_payload,
    cases_file,
    cases_concurrency,  # forks: before growth makes this process big
    cases_topology,  # forks too
    cases_memory,
    cases_growth,
)
"""The modules that measure the cases, in the order they run."""

PACKAGES = (
    "redis",
    "cachetools",
    "cachelib",
    "dogpile.cache",
    "Flask-Caching",
    "diskcache",
    "cashews",
    "aiocache",
)
DOCS = ROOT / "docs"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--only`` is checked against the cases of the issue."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts (seconds), for CI")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="where results go"
    )
    parser.add_argument(
        "--only", metavar="CASE[,CASE]", help=f"run only these cases: {', '.join(CASE_TITLES)}"
    )
    parser.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        type=Path,
        help="measure nothing: write the Markdown and the chart of a stored run again, into"
        " --out (docs/benchmarks.json is the published run's)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="with --render: write docs/benchmarks.md and docs/benchmarks.png too",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per call with callgrind instead (benchmarks/callgrind.py)",
    )
    args = parser.parse_args(argv)
    if args.publish and not args.render:
        parser.error("--publish goes with --render; a full run publishes by itself")
    if args.callgrind and args.only:
        parser.error("--only chooses timing cases; run benchmarks/callgrind.py --only instead")
    if args.only:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in only if name not in CASE_TITLES]
        if unknown:
            parser.error(
                f"unknown case {', '.join(unknown)}; the cases are: {', '.join(CASE_TITLES)}"
            )
        args.only = only
    return args


def machine() -> dict[str, Any]:
    """Python, platform, CPU, memory and library versions (redis-server's is added later)."""
    env = environment(*PACKAGES, "matplotlib")
    cpu_model = platform.processor() or platform.machine()
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        **env,
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory / 2**30, 1),
    }


def measure_all(
    smoke: bool, selected: list[str], workdir: Path
) -> tuple[list[CaseResult], dict[str, Any], dict[str, str]]:
    """Start a redis-server, run the families of the ``selected`` cases, stop it.

    Returns:
        The cases, in the issue's order, the environment, and why any selected case was
        skipped (by case id).
    """
    server = RedisServer(workdir / "redis").start()
    try:
        env = machine()
        env["redis_server"] = server.client().info()["redis_version"]
        ctx = Context(smoke=smoke, server=server, workdir=workdir)
        results: dict[str, CaseResult] = {}
        for family in FAMILIES:
            if not set(family.CASES) & set(selected):
                continue
            start = time.perf_counter()
            for case in family.run(ctx):
                results[case.id] = case
            print(f"{family.__name__}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    finally:
        server.stop()
    skipped = {case: why for case, why in ctx.skipped.items() if case in selected}
    measured = [results[case] for case in CASE_TITLES if case in selected and case in results]
    return measured, env, skipped


def main(argv: list[str] | None = None) -> int:
    """Measure, then write the results (and, for a full run of every case, the docs)."""
    args = parse_args(argv)
    if args.callgrind:
        return callgrind.main([*(["--smoke"] if args.smoke else []), "--out", str(args.out)])
    if args.render:
        return render(args.render, args.out, publish=args.publish)
    selected = args.only or list(CASE_TITLES)
    if shutil.which("redis-server") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="stratacache-bench-") as directory:
        cases, env, skipped = measure_all(args.smoke, selected, Path(directory))
    command = report.COMMAND + (" --smoke" if args.smoke else "")
    if args.only:
        command += f" --only {','.join(args.only)}"
    run = {
        "smoke": args.smoke,
        "command": command,
        "date": date,
        "seconds": time.perf_counter() - started,
        "git_commit": _git_commit(),
        "environment": env,
        "skipped": skipped,
    }
    written = write(args.out, run, cases, publish=not args.smoke and not args.only)
    print(report.targets_table([c for case in cases for c in case.checks]))
    for case, why in skipped.items():
        print(f"\n{CASE_TITLES[case]}: {why}")
    print(f"\n{run['seconds']:.0f} s; wrote {', '.join(str(p) for p in written)}")
    return 0


def write(out: Path, run: dict[str, Any], cases: list[CaseResult], *, publish: bool) -> list[Path]:
    """Write the run's JSON, Markdown and chart into ``out`` (and docs/ if ``publish``).

    The published run keeps its JSON beside its page (docs/benchmarks.json), so that a
    change of the report renders it again (``--render``) without measuring.
    """
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "results.json", run, cases)
    (out / "results.md").write_text(report.markdown(run, cases), encoding="utf-8")
    report.write_chart(out / report.CHART, [c for case in cases for c in case.checks])
    written = [out / "results.json", out / "results.md", out / report.CHART]
    if publish:
        published = DOCS / "benchmarks.json"
        if published.resolve() != (out / "results.json").resolve():
            shutil.copyfile(out / "results.json", published)
        shutil.copyfile(out / "results.md", DOCS / "benchmarks.md")
        shutil.copyfile(out / report.CHART, DOCS / report.CHART)
        written += [published, DOCS / "benchmarks.md", DOCS / report.CHART]
    return written


def render(stored: Path, out: Path, *, publish: bool) -> int:
    """Write the Markdown and the chart of the run stored in ``stored`` again."""
    data = json.loads(stored.read_text(encoding="utf-8"))
    cases = [CaseResult.from_json({"id": i, **case}) for i, case in data.pop("cases").items()]
    written = write(out, data, cases, publish=publish)
    print(f"rendered the run of {data['date']}; wrote {', '.join(str(p) for p in written)}")
    return 0


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
