"""Scenario 12: FileSystemCache under concurrent processes and writers killed mid-write.

1. Four processes of four threads each share one directory for 10,000 mixed operations (set,
   get, delete, add, inc) with a small threshold and short and long timeouts. Afterwards no
   file is unreadable, no temporary file is left, and the entry count stays within the
   threshold; then the prune policy is checked on what the run left: a write that prunes
   removes every expired entry, and a fresh one only when no expired entry remains, the
   oldest first.
2. A writer replacing a large value is SIGKILLed at random points, again and again, while a
   reader reads: every read gives the old or the new value, never a part of one, never a
   miss; the temporary files of the killed writers go with the next prune, while the
   temporary file of a live (frozen) writer stays.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratacache import NO_VALUE
from stratacache_plugins.filesystem import FileSystemCache
from tests.conftest import clean_env
from tests.test_simple import Clock

from .figures import record

pytestmark = pytest.mark.subprocess

HEADER = struct.Struct("<4sB3xd")  # magic, version, padding, expiry (0.0 = never)

PROCESSES, THREADS, OPERATIONS = 4, 4, 10_000
THRESHOLD = 60
WRITERS = PROCESSES * THREADS  # past the threshold, each may have one creation in flight
KEY_COUNT = 150  # more keys than the threshold: the prune has work

WORKER = textwrap.dedent(
    """
    import json, logging, random, sys, threading
    from collections import Counter
    from stratacache_plugins.filesystem import FileSystemCache

    directory, worker, operations, threads, threshold, keys = sys.argv[1:7]
    worker, operations, threads = int(worker), int(operations), int(threads)
    threshold, keys = int(threshold), int(keys)
    warnings = []

    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    logging.getLogger("stratacache_plugins").addHandler(Collect(logging.WARNING))
    cache = FileSystemCache(directory, threshold=threshold)
    KEYS = [f"k{i}" for i in range(keys)]
    COUNTERS = [f"counter{i}" for i in range(4)]
    TIMEOUTS = [0.05, 0.3, 1, 60, 0, None]  # short, long, never, the default
    OPS = ["set", "get", "delete", "add", "inc"]
    WEIGHTS = [35, 40, 8, 10, 7]
    counts, errors, bad_reads = Counter(), [], []
    go = threading.Barrier(threads + 1)

    def run(thread):
        rnd = random.Random(worker * 1000 + thread)
        go.wait()
        for i in range(operations):
            op = rnd.choices(OPS, WEIGHTS)[0]
            key = rnd.choice(KEYS)
            value = (key, worker, thread, i, b"x" * rnd.choice([10, 100, 10_000]))
            try:
                if op == "set":
                    cache.set(key, value, timeout=rnd.choice(TIMEOUTS))
                elif op == "get":
                    got = cache.get(key)
                    if got is not None and (type(got) is not tuple or got[0] != key):
                        bad_reads.append(repr(got)[:80])
                elif op == "delete":
                    cache.delete(key)
                elif op == "add":
                    cache.add(key, value, timeout=rnd.choice(TIMEOUTS))
                else:
                    if type(cache.inc(rnd.choice(COUNTERS))) is not int:
                        bad_reads.append("inc returned a non-integer")
            except Exception as exc:
                errors.append(f"{op}: {exc!r}")
            counts[op] += 1

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in workers:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.wait()
    for thread in workers:
        thread.join()
    print(json.dumps({"counts": counts, "errors": errors, "bad_reads": bad_reads,
                      "warnings": warnings}))
    """
)


def _entries(directory: Path) -> list[Path]:
    return list(directory.glob("*.entry"))


def _temps(directory: Path) -> list[Path]:
    return list(directory.glob("stratacache-*.tmp"))


def _read_entry(path: Path) -> tuple[float, Any]:
    """Return an entry file's expiry (0.0 = never) and value; raise if it is unreadable."""
    data = path.read_bytes()
    magic, version, expires = HEADER.unpack_from(data)
    assert (magic, version) == (b"STRC", 1), path
    return expires, pickle.loads(data[HEADER.size :])


def _arguments(worker: int, per_thread: int) -> list[str]:
    return [str(n) for n in (worker, per_thread, THREADS, THRESHOLD, KEY_COUNT)]


def _prune_follows_the_policy(snapshot: Path, scratch: Path, now: float) -> dict[str, Any]:
    """Copy ``snapshot``, make one write that prunes, at time ``now``; check the policy."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(snapshot, scratch)  # copy2: modification times are kept
    before = {p.name: (p.stat().st_mtime_ns, _read_entry(p)[0]) for p in _entries(scratch)}
    expired = {n for n, (_, e) in before.items() if e != 0.0 and e <= now}
    fresh = set(before) - expired
    clock = Clock()
    clock.now = now
    pruner = FileSystemCache(scratch, threshold=THRESHOLD, clock=clock)
    assert len(before) > THRESHOLD - 1, "the snapshot must be at the threshold"
    pruner.set("the-write-that-prunes", "new", timeout=0)
    after = {p.name: p.stat().st_mtime_ns for p in _entries(scratch)}
    assert pruner.get("the-write-that-prunes") == "new", "the new entry was pruned"
    kept = set(after) & set(before)
    evicted_fresh = fresh - kept
    target = THRESHOLD * 9 // 10
    assert not expired & kept, "an expired entry survived the prune"
    if evicted_fresh:  # only once no expired entry remains, and the oldest first
        assert len(kept) + 1 == target
        newest_evicted = max(before[n][0] for n in evicted_fresh)
        assert all(newest_evicted <= before[n][0] for n in kept)
    else:
        assert kept == fresh
    return {
        "entries": len(before),
        "expired": len(expired),
        "fresh": len(fresh),
        "expired left": len(expired & kept),
        "fresh evicted": len(evicted_fresh),
        "entries after": len(after),
    }


def test_four_processes_of_four_threads_share_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    per_thread = OPERATIONS // (PROCESSES * THREADS)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(directory), *_arguments(n, per_thread)],
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready", worker.communicate()[1]
        started = time.monotonic()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        counts_seen: list[int] = []
        while any(worker.poll() is None for worker in workers):
            counts_seen.append(len(_entries(directory)))
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            reports.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    operations = sum((Counter(r["counts"]) for r in reports), Counter())
    errors = [e for r in reports for e in r["errors"]]
    bad_reads = [b for r in reports for b in r["bad_reads"]]
    warnings = [w for r in reports for w in r["warnings"]]
    unreadable = []
    for path in _entries(directory):
        try:
            _read_entry(path)
        except Exception as exc:  # counted and reported
            unreadable.append(f"{path.name}: {exc!r}")
    final_count = len(_entries(directory))
    temps_left = len(_temps(directory))
    max_count = max([*counts_seen, final_count])

    # The prune policy, on what the run left, topped up to the threshold: one prune at the
    # first, the median and the last expiry time (few, half, all expiring entries expired).
    filler = FileSystemCache(directory, threshold=0)
    for i in range(THRESHOLD - final_count):
        filler.set(f"filler{i}", i, timeout=[0, 5, 30, 90][i % 4])
    expiries = sorted(e for e in (_read_entry(p)[0] for p in _entries(directory)) if e)
    points = {"first": expiries[0], "median": expiries[len(expiries) // 2], "last": expiries[-1]}
    prune_checks = [
        {"prune at expiry": name}
        | _prune_follows_the_policy(directory, tmp_path / f"scratch-{name}", point)
        for name, point in points.items()
    ]

    record(
        12,
        "FileSystemCache: 4 processes x 4 threads, 10,000 mixed operations",
        requirement="no error, no foreign value read, no unreadable file, no temporary file"
        " left; entry count within the threshold after the run, and during it within the"
        " threshold plus one entry per concurrent writer (16)",
        figures={
            "ops": sum(operations.values()),
            "seconds": round(elapsed, 2),
            "errors": len(errors),
            "bad reads": len(bad_reads),
            "unreadable files": len(unreadable),
            "temp files left": temps_left,
            "threshold": THRESHOLD,
            "max entry count during the run": max_count,
            "entry count after the run": final_count,
        },
        table=[{"operation": op, "count": n} for op, n in sorted(operations.items())],
        name="processes",
    )
    record(
        12,
        "FileSystemCache: the prune policy on the directory the 16 writers left",
        requirement="a write that prunes removes every expired entry, and a fresh one only"
        " once no expired entry remains, the oldest first; the entry just written stays",
        figures={
            "prunes checked": len(prune_checks),
            "expired entries pruned": sum(row["expired"] for row in prune_checks),
            "fresh entries pruned": sum(row["fresh evicted"] for row in prune_checks),
            "fresh evicted while expired remained": 0,
        },
        table=prune_checks,
        name="prune-policy",
    )
    assert sum(operations.values()) == OPERATIONS
    assert errors == []
    assert bad_reads == []
    assert warnings == []
    assert unreadable == []
    assert temps_left == 0
    assert final_count <= THRESHOLD
    assert max_count <= THRESHOLD + WRITERS, (max_count, THRESHOLD)
    assert any(row["fresh evicted"] for row in prune_checks)
    assert any(row["expired"] and not row["fresh evicted"] for row in prune_checks)


# -- writers killed mid-write -------------------------------------------------------------

KILLS = 20
SIZE = 1024 * 1024  # a write takes a millisecond or more: many kills land inside one

# Forks a writer per request and reports its pid, then how it ended. The writer replaces
# "big" with the version asked for, again and again, until it is killed. A fork of this
# already-imported interpreter starts at once, so kills land early in a write too.
FORK_SERVER = textwrap.dedent(
    """
    import os, sys
    from stratacache_plugins.filesystem import FileSystemCache

    directory, size = sys.argv[1], int(sys.argv[2])
    cache = FileSystemCache(directory, threshold=0)
    print("ready", flush=True)
    for line in sys.stdin:
        version = int(line)
        pid = os.fork()
        if pid == 0:
            try:
                value = (version, bytes([version % 256]) * size)
                while True:
                    cache.set("big", value, timeout=0)
            finally:
                os._exit(1)  # never back into the server's loop
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)
    """
)


rnd_pause = random.Random(7)


class _Writers:
    """The fork server, and the one writer it may have running (ours to kill)."""

    def __init__(self, directory: Path) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER, str(directory), str(SIZE)],
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.writer: int | None = None
        assert self._line() == "ready", self.server.communicate()[1]

    def _line(self) -> str:
        assert self.server.stdout is not None
        return self.server.stdout.readline().strip()

    def start(self, version: int) -> int:
        """Fork a writer of ``version``; return its pid."""
        assert self.server.stdin is not None
        self.server.stdin.write(f"{version}\n")
        self.server.stdin.flush()
        self.writer = int(self._line())
        return self.writer

    def kill(self) -> int:
        """SIGKILL the writer (stopped or not); return its wait status once it is gone."""
        assert self.writer is not None
        os.kill(self.writer, signal.SIGKILL)
        status = int(self._line())  # the server has reaped it
        self.writer = None
        return status

    def close(self) -> None:
        try:
            if self.writer is not None:
                self.kill()
            self.server.communicate(timeout=30)  # closes its stdin: it exits
        finally:
            if self.server.poll() is None:
                self.server.kill()
                self.server.communicate()

    def freeze_mid_write(self, directory: Path) -> str:
        """Stop the writer (SIGSTOP) while its temporary file exists; return the file's name."""
        assert self.writer is not None
        known = set(_temps(directory))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(rnd_pause.uniform(0, 0.003))
            os.kill(self.writer, signal.SIGSTOP)
            time.sleep(0.002)  # the stop takes effect
            new = set(_temps(directory)) - known
            if new:
                (path,) = new
                return path.name
            os.kill(self.writer, signal.SIGCONT)
        raise AssertionError("the writer was never caught inside a write")


def _version_of(value: Any) -> int:
    """The version a read value holds; fail on a torn or foreign value."""
    assert value is not NO_VALUE, "a miss: the entry was unreadable or gone"
    version, payload = value
    assert payload == bytes([version % 256]) * SIZE, "a torn value"
    return int(version)


class _Reader(threading.Thread):
    """Reads "big" in a loop; each read must be the old or the new version."""

    def __init__(self, cache: FileSystemCache, allowed: set[int]) -> None:
        super().__init__()
        self.cache, self.allowed = cache, allowed
        self.stop = threading.Event()
        self.reads: Counter[int] = Counter()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                version = _version_of(self.cache.lookup("big"))
                assert version in self.allowed, (version, self.allowed)
                self.reads[version] += 1
        except BaseException as exc:  # re-raised by the test
            self.failure = exc


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one: the writers write hundreds of megabytes,
    which a shared disk would throttle (renames then wait on write-back)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / "shared"
        return
    directory = Path(tempfile.mkdtemp(prefix="stratacache-kills-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_writers_killed_mid_write_leave_old_or_new_values(
    memory_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = memory_dir
    cache = FileSystemCache(directory, threshold=0)
    cache.set("big", (0, bytes(SIZE)), timeout=0)
    rnd = random.Random(12)
    delays = [0.0] + [rnd.uniform(0, 0.03) for _ in range(KILLS - 1)]  # 0: before any write
    rows: list[dict[str, Any]] = []
    reads: Counter[str] = Counter()
    old = 0
    writers = _Writers(directory)
    try:
        for version, delay in enumerate(delays, 1):
            temps_before = set(_temps(directory))
            reader = _Reader(cache, {old, version})
            reader.start()
            writers.start(version)
            time.sleep(delay)
            status = writers.kill()
            reader.stop.set()
            reader.join()
            if reader.failure is not None:
                raise reader.failure
            assert os.WIFSIGNALED(status)
            assert os.WTERMSIG(status) == signal.SIGKILL
            after = _version_of(cache.lookup("big"))
            assert after in (old, version)
            reads["old"] += reader.reads[old]
            reads["new"] += reader.reads[version]
            rows.append(
                {
                    "kill": version,
                    "after ms": round(delay * 1000, 1),
                    "reads during": sum(reader.reads.values()),
                    "value after": "new" if after == version else "old",
                    "temp file left": len(set(_temps(directory)) - temps_before),
                }
            )
            old = after

        # Two more writers, killed where a kill does the most harm: inside a write (each is
        # frozen with SIGSTOP while its temporary file exists, then killed).
        for version in range(KILLS + 1, KILLS + 3):
            writers.start(version)
            writers.freeze_mid_write(directory)
            writers.kill()
            after = _version_of(cache.lookup("big"))
            assert after in (old, version)
            rows.append(
                {
                    "kill": version,
                    "after ms": "inside a write",
                    "reads during": 0,
                    "value after": "new" if after == version else "old",
                    "temp file left": 1,
                }
            )
            old = after

        # What the killed writers left goes with the next prune; a live writer's does not.
        dead = _temps(directory)
        a_minute_ago = time.time() - 61
        for path in dead:
            os.utime(path, (a_minute_ago, a_minute_ago))
        writers.start(KILLS + 3)
        live_temp = writers.freeze_mid_write(directory)
        pruner = FileSystemCache(directory, threshold=1)
        pruner.set("the-write-that-prunes", 1)  # 2 entries > 1: a prune
        temps_after_prune = {p.name for p in _temps(directory)}
    finally:
        writers.close()

    outcomes = Counter(row["value after"] for row in rows)
    mid_write = sum(1 for row in rows if row["temp file left"])
    record(
        12,
        "FileSystemCache: writers SIGKILLed at random points of a 1 MB write",
        requirement="every read, during and after each kill, gives the old or the new value"
        " (never a torn value, an error or a miss); the killed writers' temporary files go"
        " with the next prune once a minute old, a live writer's stays",
        figures={
            "kill points": len(rows),
            "kills mid-write (temp file left)": mid_write,
            "old value after kill": outcomes["old"],
            "new value after kill": outcomes["new"],
            "reads during kills (old value)": reads["old"],
            "reads during kills (new value)": reads["new"],
            "torn reads": 0,
            "temp files left after prune": len(temps_after_prune - {live_temp}),
        },
        table=rows,
        name="killed-writers",
    )
    assert not [r for r in caplog.records if r.name.startswith("stratacache")], "a bad read"
    assert reads["old"] >= 1, "no read saw the old value: nothing was tested"
    assert reads["new"] >= 1, "no read saw the new value: nothing was tested"
    assert len(dead) >= 2, "the killed writers left no temporary file"
    assert temps_after_prune == {live_temp}, "a dead writer's file stayed, or the live one's went"
