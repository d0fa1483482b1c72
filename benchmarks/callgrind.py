"""Instructions per call of the local hits, counted by callgrind: a figure that does not drift.

    .venv/bin/python benchmarks/callgrind.py                  # every contender, about 2 min
    .venv/bin/python benchmarks/callgrind.py --only cachetools,stratacache --calls 5000
    .venv/bin/python benchmarks/callgrind.py --smoke          # 300 calls, one run: rough
    .venv/bin/python benchmarks/run.py --callgrind [--smoke]  # the same, from run.py

Timings on a shared 2-core machine move by 10-20 % from run to run; an instruction count
does not. For each contender a small Python script does its setup (imports, configuration,
the first call that fills the cache) and a warm-up, then ``N`` calls in a loop. The script
runs under ``valgrind --tool=callgrind`` twice: once with ``N`` calls and once with 0 calls,
everything else identical; the total instruction count (``Ir``, from the ``summary:`` or
``totals:`` line of the callgrind output file) of the 0-call run is the setup, so
``(Ir_N - Ir_0) / N`` is the instructions per call, the loop's own few instructions included
(the plain dict lookup is that floor). Each measurement is repeated (``--repeats``, default
2) and every repeat is reported: they should agree to a fraction of a percent. The scripts
run with ``PYTHONHASHSEED=0``, address randomization off (``setarch -R``) when available,
in an empty temporary directory (no ``.env`` file is read) and without ``CACHE_*``
variables; each runs once natively first, which writes the ``.pyc`` files so that both
counted runs read them, and also times the loop (the ``ns/call`` column, for information).

stratacache is imported from wherever this interpreter imports it (``PYTHONPATH`` is passed
on), and the path is recorded. Writes ``callgrind.json`` and ``callgrind.md`` into ``--out``
(default ``benchmarks/results``, beside ``run.py``'s results) and prints the table, with the
ratio of each contender to ``cachetools.cached(TTLCache)``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from harness import environment  # noqa: E402
from local_hit import ANCHOR  # noqa: E402

INSTALL_HINT = (
    "valgrind is not installed, and the callgrind benchmark needs it:"
    " `apt-get install valgrind` (3.19 or later)."
)
CALLS, SMOKE_CALLS = 20_000, 300
WARMUP = 200
"""Calls made in both counted runs before the loop (past the first call that fills)."""


@dataclass(frozen=True)
class Contender:
    """One contender: Python setup code binding ``f``, and the statement called in the loop.

    Attributes:
        id: A short name for ``--only``.
        name: The name in the tables (the same as the timing benchmarks').
        setup: Code run once, at module level; it binds ``f`` (``rates`` is defined).
        statement: One call (or lookup) on ``f``; it must return ``RATES``.
        awaited: The setup also binds ``_async``, a coroutine function, and the counted loop
            is a coroutine awaiting ``_async("EUR")``, as async code calls it (``f`` then
            drives one call to its end, for the checks).
    """

    id: str
    name: str
    setup: str
    statement: str = 'f("EUR")'
    awaited: bool = False


STRATACACHE_STACK = """
from stratacache import CacheStack, cached_for
stack = CacheStack()
stack.configure({"CACHE_TYPE": "NullCache", "LOCALCACHE_TYPE": "SimpleCache"})
"""

CONTENDERS: tuple[Contender, ...] = (
    Contender(
        "dict",
        "plain dict lookup (floor)",
        'f = {"EUR": rates("EUR")}',
        statement='f["EUR"]',
    ),
    Contender(
        "lru_cache",
        "functools.lru_cache",
        "import functools\nf = functools.lru_cache(maxsize=500)(rates)",
    ),
    Contender(
        "cachetools",
        ANCHOR,
        "import cachetools\n"
        "f = cachetools.cached(cachetools.TTLCache(maxsize=500, ttl=300))(rates)",
    ),
    Contender(
        "stratacache",
        "stratacache cached_for (SimpleCache)",
        STRATACACHE_STACK + "f = cached_for(minutes=5, stack=stack)(rates)",
    ),
    Contender(
        "stratacache_fresh",
        "stratacache cached_for, refresh_after=0.8 + fail_safe (SimpleCache)",
        STRATACACHE_STACK
        + "f = cached_for(minutes=5, refresh_after=0.8, fail_safe=3600, stack=stack)(rates)",
    ),
    Contender(
        "stratacache_by_reference",
        "stratacache cached_for (no serialization)",
        STRATACACHE_STACK
        + "f = cached_for(\n    minutes=5, local_ram_cache_only=True, no_serialization=True,"
        " stack=stack\n)(rates)",
    ),
)
# An ``async def`` hit never suspends, so no event loop is needed: the counted loop is one
# coroutine awaiting the hit N times (AWAITED_LOOP), run by one ``send(None)``, and each call
# costs what an ``await`` of it costs in async code (the floor below: an ``async def`` that
# returns at once). ``f`` drives a single call, for the script's check of the value.
DRIVE = """
def f(currency, _async=_async):
    coroutine = _async(currency)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("a hit suspended")
"""
CONTENDERS += (
    Contender(
        "async_floor",
        "async def returning the value (floor of one await)",
        "async def _async(currency):\n    return RATES\n" + DRIVE,
        awaited=True,
    ),
    Contender(
        "stratacache_async",
        "stratacache cached_for, async def (SimpleCache)",
        STRATACACHE_STACK
        + "async def _arates(currency):\n    return dict(RATES)\n"
        + "_async = cached_for(minutes=5, stack=stack)(_arates)\n"
        + "import asyncio\nasyncio.run(_async('EUR'))  # the miss that fills, on a loop\n"
        + DRIVE,
        awaited=True,
    ),
)

OTEL_SETUP = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from stratacache import CacheStack, cached_for, plugin_manager
from stratacache_plugins import otel

tracing = TracerProvider()
spans = InMemorySpanExporter()
tracing.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracing)
metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
if plugin_manager().get_plugin("otel") is None:  # not installed through its entry point
    plugin_manager().register(otel, name="otel")
stack = CacheStack()
stack.configure(
    {"CACHE_TYPE": "NullCache", "LOCALCACHE_TYPE": "SimpleCache", "CACHE_OTEL": True}
)
f = cached_for(minutes=5, stack=stack)(rates)
assert f("EUR") == RATES and len(spans.get_finished_spans()) == 2  # the miss, its computation
"""

CONTENDERS += (
    Contender(
        "stratacache_otel", "stratacache cached_for (SimpleCache, CACHE_OTEL on)", OTEL_SETUP
    ),
)
"""The OpenTelemetry plugin's contender: a local hit with spans and metrics on (not a
timing case: compare its count with ``stratacache``'s, which it must equal)."""
BY_ID = {c.id: c for c in CONTENDERS}

SCRIPT = """\
# Generated by benchmarks/callgrind.py: {name}
import gc
import itertools
import json
import sys
import time

N = int(sys.argv[1])
RATES = {{"USD": 1.08, "GBP": 0.85, "JPY": 161.2}}


def rates(currency):
    return dict(RATES)


{setup}


{loop}


assert ({statement}) == RATES
loop({warmup})
gc.collect()
if sys.argv[2:] == ["--time"]:
    samples = []
    for _ in range(7):
        start = time.perf_counter_ns()
        loop(N)
        samples.append((time.perf_counter_ns() - start) / N)
    print(json.dumps(samples))
else:
    loop(N)
"""


LOOP = """\
def loop(n, f=f, repeat=itertools.repeat):
    for _ in repeat(None, n):  # no int objects made, as timeit does
        {statement}
"""
AWAITED_LOOP = """\
async def _awaiting(n, f=_async, repeat=itertools.repeat):
    for _ in repeat(None, n):
        await f("EUR")


def loop(n):
    coroutine = _awaiting(n)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("a hit suspended")
"""


def script(contender: Contender) -> str:
    """The contender's script; it takes the number of calls (and ``--time`` to time them)."""
    return SCRIPT.format(
        name=contender.name,
        setup=textwrap.dedent(contender.setup).strip(),
        statement=contender.statement,
        loop=(AWAITED_LOOP if contender.awaited else LOOP.format(statement=contender.statement)),
        warmup=WARMUP,
    )


def child_env() -> dict[str, str]:
    """This environment without ``CACHE_*`` variables, with a fixed hash seed."""
    env = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("CACHE_", "LOCALCACHE_"))
    }
    env["PYTHONHASHSEED"] = "0"
    return env


def read_ir(path: Path) -> int:
    """The total ``Ir`` of a callgrind output file (its ``summary:`` or ``totals:`` line)."""
    events = ["Ir"]
    totals: list[str] | None = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split(":", 1)[1].split()
        elif line.startswith(("summary:", "totals:")):
            totals = line.split(":", 1)[1].split()
    if totals is None:
        raise RuntimeError(f"{path}: no summary: or totals: line")
    return int(totals[events.index("Ir")])


def count(script_path: Path, calls: int, out: Path) -> int:
    """Run the script with ``calls`` calls under callgrind; return its total ``Ir``."""
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(script_path),
        str(calls),
    ]
    if shutil.which("setarch"):
        command = ["setarch", os.uname().machine, "-R", *command]
    _run(command, script_path, timeout=900)
    return read_ir(out)


def _run(command: list[str], script_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one contender's script; raise with its stderr if it fails."""
    result = subprocess.run(
        command,
        cwd=script_path.parent,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return result


def time_natively(script_path: Path, calls: int) -> list[float]:
    """Run the script without valgrind (writing the ``.pyc`` files); ns per call, 7 loops."""
    result = _run([sys.executable, str(script_path), str(calls), "--time"], script_path, 300)
    samples: list[float] = json.loads(result.stdout.splitlines()[-1])
    return samples


def measure(
    contenders: list[Contender], calls: int, repeats: int, jobs: int, workdir: Path
) -> dict[str, dict[str, Any]]:
    """Count and time every contender; return the figures by name, in the given order."""
    paths = {}
    for contender in contenders:
        directory = workdir / contender.id
        directory.mkdir()
        paths[contender.id] = directory / "bench_script.py"
        paths[contender.id].write_text(script(contender), encoding="utf-8")
    # Natively first, one at a time: it compiles what the counted runs import, and its
    # timings are not disturbed by the valgrind runs.
    native = {c.id: time_natively(paths[c.id], max(calls, 20_000)) for c in contenders}
    runs = [(c.id, repeat, n) for c in contenders for repeat in range(repeats) for n in (calls, 0)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            run: pool.submit(
                count, paths[run[0]], run[2], workdir / run[0] / f"callgrind.{run[1]}.{run[2]}"
            )
            for run in runs
        }
        ir = {run: future.result() for run, future in futures.items()}
    results: dict[str, dict[str, Any]] = {}
    for c in contenders:
        with_calls = [ir[(c.id, r, calls)] for r in range(repeats)]
        without = [ir[(c.id, r, 0)] for r in range(repeats)]
        per_call = [(a - b) / calls for a, b in zip(with_calls, without, strict=True)]
        results[c.name] = {
            "id": c.id,
            "ir_per_call": per_call,
            "ir_per_call_mean": statistics.fmean(per_call),
            "ir_total_with_calls": with_calls,
            "ir_total_without_calls": without,
            "native_ns_per_call": native[c.id],
            "native_ns_per_call_median": statistics.median(native[c.id]),
        }
    anchor = results.get(ANCHOR)
    for figures in results.values():
        figures["ratio_to_cachetools"] = (
            figures["ir_per_call_mean"] / anchor["ir_per_call_mean"] if anchor else None
        )
    return results


def markdown(run: dict[str, Any]) -> str:
    """The figures as a Markdown table, with how they were made."""
    results = run["results"]
    repeats = run["repeats"]
    header = " | ".join(f"Ir/call, run {r + 1}" for r in range(repeats))
    lines = [
        f"| contender | {header} | spread | ratio to cachetools | native ns/call (median) |",
        "|---|" + "---:|" * (repeats + 3),
    ]
    for name, f in results.items():
        counts = " | ".join(f"{v:,.1f}" for v in f["ir_per_call"])
        spread = (max(f["ir_per_call"]) - min(f["ir_per_call"])) / f["ir_per_call_mean"]
        ratio = f"{f['ratio_to_cachetools']:.2f}x" if f["ratio_to_cachetools"] else "-"
        native = f["native_ns_per_call_median"]
        lines.append(f"| {name} | {counts} | {spread:.3%} | {ratio} | {native:,.0f} |")
    intro = (
        f"Instructions per call (callgrind Ir; (Ir with {run['calls']:,} calls - Ir with 0"
        f" calls) / {run['calls']:,}, {repeats} run{'s' * (repeats != 1)} each), {run['date']},"
        f" stratacache from"
        f" {run['stratacache']}:"
    )
    return "\n".join([intro, "", *lines]) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_CALLS} calls, one run")
    parser.add_argument("--calls", type=int, help=f"calls in the counted loop (default {CALLS})")
    parser.add_argument("--repeats", type=int, help="counted runs per contender (default 2)")
    parser.add_argument(
        "--only", metavar="ID[,ID]", help=f"run only these contenders: {', '.join(BY_ID)}"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="valgrinds at once")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="where results go"
    )
    args = parser.parse_args(argv)
    args.calls = args.calls or (SMOKE_CALLS if args.smoke else CALLS)
    args.repeats = args.repeats or (1 if args.smoke else 2)
    if args.calls < 1 or args.repeats < 1 or args.jobs < 1:
        parser.error("--calls, --repeats and --jobs must be at least 1")
    ids = [i.strip() for i in args.only.split(",") if i.strip()] if args.only else list(BY_ID)
    unknown = [i for i in ids if i not in BY_ID]
    if unknown:
        parser.error(f"unknown contender {', '.join(unknown)}; they are: {', '.join(BY_ID)}")
    args.contenders = [BY_ID[i] for i in ids]
    return args


def main(argv: list[str] | None = None) -> int:
    """Count every contender's instructions per call; print and write the figures."""
    args = parse_args(argv)
    if shutil.which("valgrind") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    import stratacache

    version = subprocess.run(
        ["valgrind", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="stratacache-callgrind-") as directory:
        results = measure(args.contenders, args.calls, args.repeats, args.jobs, Path(directory))
    run = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": date,
        "calls": args.calls,
        "warmup": WARMUP,
        "repeats": args.repeats,
        "valgrind": version,
        "stratacache": str(Path(stratacache.__file__).parent),
        "environment": environment("cachetools"),
        "results": results,
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "callgrind.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    table = markdown(run)
    (out / "callgrind.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"wrote {out / 'callgrind.json'}, {out / 'callgrind.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
