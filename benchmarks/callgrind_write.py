"""Instructions per miss + write, counted by callgrind: stratacache against raw redis-py.

    .venv/bin/python benchmarks/callgrind_write.py [--calls 1000] [--smoke]

The CPU-side twin of the ``miss_write`` case (:mod:`cases_write`), whose wall-clock ratio
moves by tens of percent on a loaded 2-core machine. Each contender runs in a script under
``valgrind --tool=callgrind`` twice, with ``N`` calls and with 0, against a redis-server of
its own on a free port (emptied before each run, so every call misses);
``(Ir_N - Ir_0) / N`` is what one call costs this process in user-space instructions, its
threads included (the invalidation listener's), the kernel's and the server's work not.
The contenders are :mod:`cases_write`'s own: one raw ``SET EX``, the raw two-round-trip
floor (a ``GET`` that misses, then ``SET EX``), and a ``cached_for`` miss that writes to
SimpleCache and RedisCache with key tracking.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from callgrind import child_env, read_ir  # noqa: E402
from cases_write import RAW, RAW_READ_THROUGH, STRATACACHE  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402

SCRIPT = """\
import sys
sys.path[:0] = [{benchmarks!r}, {root!r}]
import cases_write

N, WHICH, PORT = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
url = f"redis://127.0.0.1:{{PORT}}/0"
if WHICH == "raw":
    call = cases_write.raw_case(PORT, "cg-raw:")
elif WHICH == "raw_read":
    call = cases_write.raw_case(PORT, "cg-read:", read_first=True)
else:
    call = cases_write.stratacache_case(url)
for _ in range(50):  # warm-up: connections, the first write of the tracking set
    call()
for _ in range(N):
    call()
"""

CONTENDERS = {"raw": RAW, "raw_read": RAW_READ_THROUGH, "ours": STRATACACHE}
"""The contenders, by the name the script takes, with their names in ``cases_write``."""


def write_script(path: Path) -> Path:
    """Write the contenders' script at ``path``; it takes ``N``, the contender and a port."""
    path.write_text(
        SCRIPT.format(benchmarks=str(ROOT / "benchmarks"), root=str(ROOT)), encoding="utf-8"
    )
    return path


def count(script: Path, calls: int, which: str, server: RedisServer, out: Path) -> int:
    """Total instructions of the script with ``calls`` calls, on an emptied server."""
    server.client().flushdb()
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         str(script), str(calls), which, str(server.port)],
        env=child_env(), capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"the {which} script failed under valgrind:\n{result.stderr[-3000:]}")
    return read_ir(out)


def measure(calls: int, only: list[str] | None = None) -> dict[str, float]:
    """Instructions per call of each contender (by its name in ``cases_write``).

    ``only``: the contenders to count, by the names :data:`CONTENDERS` gives them.
    """
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = write_script(work / "miss_write.py")
        server = RedisServer(work / "redis").start()
        try:
            per_call = {}
            for which, name in CONTENDERS.items():
                if only is not None and which not in only:
                    continue
                full = count(script, calls, which, server, work / f"{which}.n")
                empty = count(script, 0, which, server, work / f"{which}.0")
                per_call[name] = (full - empty) / calls
        finally:
            server.stop()
    return per_call


def main(argv: list[str] | None = None) -> int:
    """Print the instructions per call of each contender and the ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="50 calls: rough, for CI")
    parser.add_argument(
        "--only", metavar="NAME[,NAME]", help=f"count only these: {', '.join(CONTENDERS)}"
    )
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    if only is not None and not set(only) <= set(CONTENDERS):
        parser.error(f"unknown contender in {args.only!r}; they are {', '.join(CONTENDERS)}")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    per_call = measure(50 if args.smoke else args.calls, only)
    raw, floor = per_call.get(RAW), per_call.get(RAW_READ_THROUGH)
    for name, ir in per_call.items():
        ratios = [f"{ir / raw:.2f}x raw SET EX"] if raw else []
        ratios += [f"{ir / floor:.2f}x the floor"] if floor else []
        print(f"{name}: {ir:,.0f} Ir/call" + (f" ({', '.join(ratios)})" if ratios else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
