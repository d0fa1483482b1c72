"""Instructions per shared hit, counted by callgrind: stratacache against raw redis-py.

    .venv/bin/python benchmarks/callgrind_shared.py [--calls 2000]          # async def
    .venv/bin/python benchmarks/callgrind_shared.py --sync [--calls 2000]   # def

A wall-clock ratio of two Redis round trips on a loaded 2-core machine moves by tens of
percent; the instructions the process executes per hit do not (the kernel's work and the
server's are not counted: only this process's user-space instructions). Each contender runs
in a script under ``valgrind --tool=callgrind`` twice, with ``N`` hits and with 0, on a
redis-server of its own on a free port; ``(Ir_N - Ir_0) / N`` is the cost of one hit:
``await`` of raw ``redis.asyncio`` ``GET`` + ``pickle.loads``, and ``await`` of a
``cached_for`` ``async def`` whose only tier is RedisCache (every call a shared hit); with
``--sync``, raw redis-py ``GET`` + ``pickle.loads`` and a ``cached_for`` ``def``.
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

from tests.redis_server import RedisServer  # noqa: E402

SCRIPT = """\
import asyncio, pickle, sys
import redis.asyncio as aioredis
from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCache

N, WHICH, URL = int(sys.argv[1]), sys.argv[2], sys.argv[3]


async def main():
    raw = aioredis.Redis.from_url(URL)
    await raw.set("cg_raw", pickle.dumps({"a": 1}))
    stack = CacheStack.from_tiers([RedisCache(url=URL, key_prefix="cg_ours")])

    @cached_for(minutes=30, stack=stack)
    async def ours(n):
        return {"a": 1}

    async def raw_hit():
        return pickle.loads(await raw.get("cg_raw"))

    hit = raw_hit if WHICH == "raw" else (lambda: ours(1))
    for _ in range(50):  # warm-up, the first call (ours: the miss that writes) included
        await hit()
    for _ in range(N):
        await hit()
    await raw.aclose()


def main_sync():
    import redis
    raw = redis.Redis.from_url(URL)
    raw.set("cg_raw", pickle.dumps({"a": 1}))
    stack = CacheStack.from_tiers([RedisCache(url=URL, key_prefix="cg_ours")])

    @cached_for(minutes=30, stack=stack)
    def ours(n):
        return {"a": 1}

    def raw_hit():
        return pickle.loads(raw.get("cg_raw"))

    hit = raw_hit if WHICH == "raw_sync" else (lambda: ours(1))
    for _ in range(50):
        hit()
    for _ in range(N):
        hit()
    raw.close()


main_sync() if WHICH.endswith("_sync") else asyncio.run(main())
"""


def count(script: Path, calls: int, which: str, url: str, out: Path) -> int:
    """Total instructions of the script with ``calls`` hits."""
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         str(script), str(calls), which, url],
        env=child_env(), capture_output=True, check=True, timeout=900,
    )  # fmt: skip
    return read_ir(out)


def main(argv: list[str] | None = None) -> int:
    """Print the instructions per hit of both contenders and their ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--sync", action="store_true", help="def functions and redis-py")
    args = parser.parse_args(argv)
    contenders = ("raw_sync", "ours_sync") if args.sync else ("raw", "ours")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = work / "shared_hit.py"
        script.write_text(SCRIPT, encoding="utf-8")
        server = RedisServer(work / "redis").start()
        try:
            per_hit = {}
            for which in contenders:
                full = count(script, args.calls, which, server.url, work / f"{which}.n")
                empty = count(script, 0, which, server.url, work / f"{which}.0")
                per_hit[which] = (full - empty) / args.calls
        finally:
            server.stop()
    raw, ours = (per_hit[which] for which in contenders)
    kind = ("redis-py", "def") if args.sync else ("redis.asyncio", "async def")
    print(f"raw {kind[0]} GET + pickle.loads: {raw:,.0f} Ir/hit")
    print(f"stratacache cached_for, {kind[1]} (RedisCache): {ours:,.0f} Ir/hit")
    print(f"ratio: {ours / raw:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
