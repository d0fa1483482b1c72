"""Hardening 11.4 and 11.11: FileSystemCache on a full disk, a read-only mount, planted files.

Item 4. A real tmpfs of 64 KiB fills up under decorated calls, and a real read-only bind
mount serves an existing directory: no exception reaches a caller, reads of the entries that
are there keep working, writes fail (``False``), each failure counts in ``stats.errors`` and
one rate-limited WARNING says so. Which ``OSError`` degrades and which stays a bug is checked
errno by errno.

Item 11. Real symbolic links (and hard links) planted in the directory, as the count file,
the lock file, a group index and an entry, point at victim files outside it, whose bytes must
not change; real FIFOs planted at the same paths are opened by fresh processes that must
finish within a bounded wait; the directory is created owner-only.

The tests run as root: they mount, and fail (never skip) when mounting is impossible.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stratacache import NO_VALUE, CacheStack, cached_for
from stratacache_plugins.filesystem import FileSystemCache
from tests.conftest import clean_env

from .figures import record

LOGGER = "stratacache_plugins.filesystem"
SECRET = "hardening-secret"


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs of 64 KiB, mounted for the test."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    _run("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount_point))
    try:
        yield mount_point
    finally:
        _run("umount", str(mount_point))


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A directory, and a read-only bind mount of it: ``(writable, read_only)``."""
    source, view = tmp_path / "source", tmp_path / "read-only"
    source.mkdir(mode=0o700)
    view.mkdir(mode=0o700)
    _run("mount", "--bind", str(source), str(view))
    try:
        _run("mount", "-o", "remount,bind,ro", str(view))
        yield source, view
    finally:
        _run("umount", str(view))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(LOGGER)]


def _temps(directory: Path) -> list[Path]:
    return list(directory.glob("stratacache-*.tmp"))


# -- item 4: a full disk --------------------------------------------------------------------

PAGES = 40


def test_a_full_disk_fails_writes_quietly_and_reads_keep_working(
    full_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = full_disk / "cache"
    seed = FileSystemCache(directory)
    for i in range(5):
        seed.set(f"kept{i}", ("kept", i), timeout=0)
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(directory)})
    backend = stack.shared_cache.cache
    computed: list[int] = []

    @cached_for(minutes=5, stack=stack)
    def render(page: int) -> bytes:
        computed.append(page)
        return bytes([page]) * 4000

    exceptions, wrong = [], 0
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for page in range(PAGES):
            try:
                wrong += render(page) != bytes([page]) * 4000
            except Exception as exc:  # reported, then the test fails
                exceptions.append(f"{page}: {exc!r}")
        stored = sum(1 for page in range(PAGES) if backend.has(render.cache_key(page)))
        direct = {
            "set": backend.set("direct", b"y" * 8000),
            "add": backend.add("direct", b"y" * 8000),
            "set_many": backend.set_many({"m1": b"z" * 8000, "m2": b"z" * 8000}),
        }
        kept = [backend.get(f"kept{i}") for i in range(5)]
        warnings_when_full = _warnings(caplog)
        errors_when_full = stack.stats()["layers"]["shared"]["errors"]
        temps_left = len(_temps(directory))
        backend.clear()  # frees the space: writes work again
        recovered = backend.set("after", "room again")
    seconds = time.monotonic() - started
    failed_writes = PAGES - stored
    record(
        104,
        "Hardening 11.4: FileSystemCache on a full disk (a real 64 KiB tmpfs)",
        requirement="no decorated call raises and each returns its value; writes that do"
        " not fit return False and count in stats.errors; the entries already on the disk"
        " read back; one WARNING (rate-limited) for every failure; no temporary file left;"
        " once space is freed, writes work again",
        figures={
            "decorated calls": PAGES,
            "exceptions": len(exceptions),
            "wrong values": wrong,
            "computations": len(computed),
            "writes that did not fit": failed_writes,
            "errors counted": errors_when_full,
            "warnings": len(warnings_when_full),
            "existing entries read back": f"{sum(k == ('kept', i) for i, k in enumerate(kept))}/5",
            "temp files left": temps_left,
            "write after freeing space": recovered,
            "seconds": round(seconds, 2),
        },
        name="full-disk",
    )
    assert exceptions == []
    assert wrong == 0
    assert computed == list(range(PAGES))
    assert failed_writes >= PAGES // 2, "the disk never filled: nothing was tested"
    assert direct == {"set": False, "add": False, "set_many": []}
    assert errors_when_full >= failed_writes + 4
    assert kept == [("kept", i) for i in range(5)]
    assert len(warnings_when_full) == 1, warnings_when_full
    assert "ENOSPC" in warnings_when_full[0]
    assert temps_left == 0
    assert recovered is True
    assert backend.get("after") == "room again"
    assert "takes writes again" in _warnings(caplog)[-1]


# -- item 4: a read-only mount --------------------------------------------------------------


def test_a_read_only_mount_serves_reads_and_fails_writes_quietly(
    read_only: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    source, view = read_only
    now = [1_000_000.0]
    writer = FileSystemCache(source, threshold=10, clock=lambda: now[0])
    writer.set("fresh", "kept", timeout=0)
    writer.set("short", "expires", timeout=10)
    writer.set_tracked("tracked", "t", 0, "group")
    writer.inc("counter")
    now[0] += 60  # "short" has expired: reading it tries to delete it

    rows: list[dict[str, Any]] = []
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        try:
            reader = FileSystemCache(view, threshold=10, clock=lambda: now[0])
        except OSError as exc:
            pytest.fail(f"the constructor raised {exc!r} on a read-only mount")
        errors_before = reader.stats.errors  # the count file cannot be opened to append
        rows.append({"operation": "FileSystemCache()", "result": "built", "errors": errors_before})
        operations: list[tuple[str, Callable[[], Any], Any]] = [
            ("get fresh", lambda: reader.get("fresh"), "kept"),
            ("lookup_entry fresh", lambda: reader.lookup_entry("fresh")[1], float("inf")),
            ("has fresh", lambda: reader.has("fresh"), True),
            ("get expired", lambda: reader.get("short"), None),
            ("has expired", lambda: reader.has("short"), False),
            ("set", lambda: reader.set("new", 1), False),
            ("add", lambda: reader.add("new", 1), False),
            ("delete", lambda: reader.delete("fresh"), False),
            ("inc", lambda: reader.inc("counter"), None),
            ("set_tracked", lambda: reader.set_tracked("k", 1, None, "group"), False),
            ("clear_tracked", lambda: reader.clear_tracked("group"), 0),
            ("clear", reader.clear, False),
            ("get fresh again", lambda: reader.get("fresh"), "kept"),
        ]
        for name, operation, expected in operations:
            try:
                result: Any = operation()
            except Exception as exc:  # reported, then the test fails
                result = f"raised {exc!r}"
            errors = reader.stats.errors - errors_before
            errors_before = reader.stats.errors
            rows.append({"operation": name, "result": repr(result), "errors": errors})
            assert result == expected, (name, result)
            assert errors == (0 if name.startswith(("get fresh", "lookup", "has fresh")) else 1)

        stack = CacheStack()
        stack.configure({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(view)})

        @cached_for(minutes=5, stack=stack)
        def square(x: int) -> int:
            return x * x

        squares = [square(x) for x in range(10)]
        with pytest.raises(OSError, match="Read-only file system"):
            reader.ping()  # the operator CLI hears of it
        warnings = _warnings(caplog)

    record(
        104,
        "Hardening 11.4: FileSystemCache on a read-only bind mount",
        requirement="nothing raises but ping(); entries there read back; an expired entry is"
        " a miss; writes, deletes, inc and clears fail (False / None / 0), each counting one"
        " error in stats.errors; decorated calls return their values; one WARNING in all",
        figures={
            "operations": len(rows),
            "exceptions": 0,
            "errors counted": reader.stats.errors,
            "decorated calls returning their value": sum(s == x * x for x, s in enumerate(squares)),
            "warnings": len(warnings),
        },
        table=rows,
        name="read-only",
    )
    assert squares == [x * x for x in range(10)]
    assert len(warnings) == 1, warnings
    assert "EROFS" in warnings[0]


# -- item 4: which errors degrade -----------------------------------------------------------

DEGRADE = ["ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "EIO", "ESTALE", "EMFILE"]
RAISE = ["EBADF", "EINVAL", "ENAMETOOLONG", "EEXIST", "EXDEV"]


def test_only_errors_of_an_unusable_store_degrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FileSystemCache(tmp_path / "cache")
    cache.set("k", "old")
    rows = []
    for name in DEGRADE + RAISE:
        code = getattr(errno, name)

        def fail(*_args: Any, code: int = code) -> None:
            raise OSError(code, os.strerror(code))

        errors = cache.stats.errors
        with monkeypatch.context() as patch:
            patch.setattr(os, "replace", fail)
            try:
                outcome = f"set returned {cache.set('k', 'new')}"
            except OSError as exc:
                outcome = f"raised {errno.errorcode[exc.errno or 0]}"
        rows.append({"errno": name, "outcome": outcome, "errors": cache.stats.errors - errors})
    record(
        104,
        "Hardening 11.4: which OSErrors degrade and which raise",
        requirement="an error that says the store is unusable (full, read-only, no right,"
        " failing device, no descriptors) makes a write fail and counts; any other is a bug"
        " and raises; the old entry stays",
        figures={
            "errnos that degrade": ", ".join(DEGRADE),
            "errnos that raise": ", ".join(RAISE),
        },
        table=rows,
        name="errnos",
    )
    expected = [f"set returned False/{n}" for n in DEGRADE] + [f"raised {n}/{n}" for n in RAISE]
    assert [f"{r['outcome']}/{r['errno']}" for r in rows] == expected
    assert [r["errors"] for r in rows] == [1] * len(DEGRADE) + [0] * len(RAISE)
    assert cache.get("k") == "old"
    assert _temps(tmp_path / "cache") == []


# -- item 11: planted links -----------------------------------------------------------------


def _name(key: str, suffix: str = ".entry") -> str:
    return hashlib.sha256(key.encode()).hexdigest() + suffix


def _fingerprint(path: Path) -> tuple[int, str, int]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest(), path.stat().st_mtime_ns


def _plant_link(kind: str, target: Path, at: Path) -> None:
    at.unlink(missing_ok=True)
    if kind == "hard link":
        os.link(target, at)
    else:
        at.symlink_to(target)


def _count_file(cache: FileSystemCache, directory: Path) -> list[Any]:
    for i in range(20):  # past the threshold: prunes, which truncate the count
        cache.set(f"k{i}", i)
    assert cache.get("k19") == 19
    return [cache.clear(), FileSystemCache(directory, threshold=5).set("again", 1)]


def _lock_file(cache: FileSystemCache, directory: Path) -> list[Any]:
    return [cache.inc("n") for _ in range(10)]


def _group_index(cache: FileSystemCache, directory: Path) -> list[Any]:
    for i in range(60):
        cache.set_tracked(f"k{i}", i, None, "group")
    return [cache.clear_tracked("group")]


def _entry(cache: FileSystemCache, directory: Path) -> list[Any]:
    return [cache.get("k"), cache.has("k"), cache.add("k", "mine"), cache.get("k")]


Operations = Callable[[FileSystemCache, Path], list[Any]]
COUNT, LOCK, GROUP = "stratacache.count", "stratacache.lock", _name("group", ".group")
LINK_CASES: dict[str, tuple[str, str, int, Operations, list[Any]]] = {
    # case: (link kind, planted at, threshold, operations, their results)
    "count file, symlink": ("symlink", COUNT, 5, _count_file, [True, True]),
    "count file, dangling symlink": ("dangling", COUNT, 5, _count_file, [True, True]),
    "count file, hard link": ("hard link", COUNT, 5, _count_file, [True, True]),
    "lock file, symlink": ("symlink", LOCK, 0, _lock_file, list(range(1, 11))),
    "lock file, hard link": ("hard link", LOCK, 0, _lock_file, list(range(1, 11))),
    "group index, symlink": ("symlink", GROUP, 0, _group_index, [60]),
    "group index, hard link": ("hard link", GROUP, 0, _group_index, [60]),
    "entry, symlink to a signed entry": (
        "entry",
        _name("k"),
        0,
        _entry,
        [None, False, True, "mine"],
    ),
}


def _link_case(tmp_path: Path, case: str) -> dict[str, Any]:
    kind, planted_at, threshold, operations, expected = LINK_CASES[case]
    root = tmp_path / case.replace(" ", "-").replace(",", "")
    directory, outside = root / "cache", root / "outside"
    outside.mkdir(parents=True)
    victim = outside / "victim.bin"
    if kind == "entry":  # a real entry of the key, signed with the same secret, elsewhere
        elsewhere = FileSystemCache(outside / "other", secret_key=SECRET)
        elsewhere.set("k", "from outside", timeout=0)
        (entry,) = (outside / "other").glob("*.entry")
        victim = entry
    else:
        victim.write_bytes(random.Random(11).randbytes(23_000))
    before = _fingerprint(victim)
    cache = FileSystemCache(directory, threshold=threshold, secret_key=SECRET)
    cache.set("existing", 1)
    dangling = outside / "created-through-the-link"
    _plant_link(kind, dangling if kind == "dangling" else victim, directory / planted_at)
    results = operations(cache, directory)
    links_left = [p.name for p in directory.iterdir() if p.is_symlink()]
    hard_links_left = [p.name for p in directory.iterdir() if p.lstat().st_nlink > 1]
    return {
        "case": case,
        "results as expected": results == expected,
        "victim bytes before": before[0],
        "victim bytes after": victim.stat().st_size,
        "victim unchanged": _fingerprint(victim) == before,
        "file created outside": dangling.exists(),
        "links left in the directory": len(links_left) + len(hard_links_left),
        "errors counted": cache.stats.errors,
        "unreadable entries counted": cache.stats.deserialization_failures,
        "_results": results,
    }


def test_planted_links_are_never_followed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rows = [_link_case(tmp_path, case) for case in LINK_CASES]
    warnings = [w for w in _warnings(caplog) if "planted" in w]
    results = {row["case"]: row.pop("_results") for row in rows}
    record(
        111,
        "Hardening 11.11: links planted in a signed FileSystemCache directory",
        requirement="a symbolic or hard link planted as the count file, the lock file, a group"
        " index or an entry, pointing outside the directory, is removed and never followed:"
        " its target's bytes are unchanged, nothing is created through a dangling link, no"
        " value is read through it; the operations give their normal results",
        figures={
            "cases": len(rows),
            "victims changed": sum(not row["victim unchanged"] for row in rows),
            "files created outside": sum(row["file created outside"] for row in rows),
            "values read through a link": sum(
                results[c][0] == "from outside" for c in results if c.startswith("entry")
            ),
            "links left": sum(row["links left in the directory"] for row in rows),
            "warnings": len(warnings),
        },
        table=rows,
        name="links",
    )
    for row in rows:
        case = row["case"]
        assert row["victim unchanged"], (case, row)
        assert not row["file created outside"], case
        assert row["links left in the directory"] == 0, case
        assert row["results as expected"], (case, results[case], LINK_CASES[case][4])
        counted = row["errors counted"] + row["unreadable entries counted"]
        assert counted >= 1, (case, "the planted link was not counted")
    assert warnings, "no warning about the planted files"


# -- item 11: planted FIFOs -----------------------------------------------------------------

FIFO_READER = textwrap.dedent(
    """
    import json, sys
    from stratacache_plugins.filesystem import FileSystemCache

    directory, case, secret = sys.argv[1:4]
    cache = FileSystemCache(directory, threshold=2, secret_key=secret)
    if case == "entry, get":
        results = [cache.get("k"), cache.lookup_entry("k")[0] is None]
    elif case == "entry, has":
        results = [cache.has("k"), cache.add("k", "mine"), cache.get("k")]
    elif case == "entry, prune":
        results = [cache.set(f"n{i}", i) for i in range(3)]
    elif case == "count file":
        results = [cache.set("new", 1), cache.clear()]
    elif case == "lock file":
        results = [cache.inc("n"), cache.inc("n")]
    else:
        results = [cache.set_tracked("t", 1, None, "group"), cache.clear_tracked("group")]
    print(json.dumps({"results": results, "errors": cache.stats.errors,
                      "unreadable": cache.stats.deserialization_failures}))
    """
)

FIFO_CASES: dict[str, tuple[str, list[Any]]] = {
    "entry, get": (_name("k"), [None, False]),
    "entry, has": (_name("k"), [False, True, "mine"]),
    "entry, prune": (_name("k"), [True, True, True]),
    "count file": ("stratacache.count", [True, True]),
    "lock file": ("stratacache.lock", [1, 2]),
    "group index": (_name("group", ".group"), [True, 1]),
}
FIFO_DEADLINE = 30.0  # for all the readers (each starts an interpreter, slow on a loaded machine):
# a reader blocked on a FIFO never finishes, so any bound tells it apart


def _reader_outcome(reader: subprocess.Popen[str], deadline: float) -> Any:
    """The results the reader printed, or "blocked" if it is still running at ``deadline``."""
    try:
        out, err = reader.communicate(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return "blocked"
    if reader.returncode != 0:
        return f"failed: {err[-300:]}"
    return json.loads(out)


def test_a_planted_fifo_never_blocks_a_reader(tmp_path: Path) -> None:
    readers: dict[str, subprocess.Popen[str]] = {}
    rows = []
    try:
        for number, (case, (planted_at, _expected)) in enumerate(FIFO_CASES.items()):
            directory = tmp_path / f"case{number}"
            FileSystemCache(directory, secret_key=SECRET).set("existing", 1)
            (directory / planted_at).unlink(missing_ok=True)
            os.mkfifo(directory / planted_at)
            readers[case] = subprocess.Popen(
                [sys.executable, "-c", FIFO_READER, str(directory), case, SECRET],
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        started = time.monotonic()
        for number, (case, reader) in enumerate(readers.items()):
            planted_at, expected = FIFO_CASES[case]
            report = _reader_outcome(reader, started + FIFO_DEADLINE)
            left = tmp_path / f"case{number}" / planted_at
            results = report["results"] if isinstance(report, dict) else report
            rows.append(
                {
                    "case": case,
                    "outcome": "as expected" if results == expected else results,
                    "seconds": round(time.monotonic() - started, 2),
                    "FIFO left": os.path.lexists(left) and stat.S_ISFIFO(left.lstat().st_mode),
                    "counted": report["errors"] + report["unreadable"]
                    if isinstance(report, dict)
                    else 0,
                }
            )
    finally:
        for reader in readers.values():
            if reader.poll() is None:
                reader.kill()
            reader.communicate()
    record(
        111,
        "Hardening 11.11: FIFOs planted in a signed FileSystemCache directory",
        requirement="a FIFO planted as an entry (read, has, prune), the count file, the lock"
        f" file or a group index blocks no process: each reader finishes within"
        f" {FIFO_DEADLINE:.0f} s with the normal results, the FIFO removed and counted",
        figures={
            "cases": len(rows),
            "blocked readers": sum(row["outcome"] == "blocked" for row in rows),
            "slowest reader (s)": max(row["seconds"] for row in rows),
            "FIFOs left": sum(bool(row.get("FIFO left")) for row in rows),
        },
        table=rows,
        name="fifos",
    )
    for row in rows:
        assert row["outcome"] == "as expected", row
        assert not row["FIFO left"], row
        assert row["counted"] >= 1, row


# -- item 11: the directory's permissions ---------------------------------------------------


def test_the_directory_is_made_owner_only_and_a_writable_one_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    umask = os.umask(0o022)
    try:
        FileSystemCache(tmp_path / "made" / "cache").set("k", 1)
        FileSystemCache(tmp_path / "group-readable", mode=0o640).set("k", 1)
    finally:
        os.umask(umask)
    made = stat.S_IMODE((tmp_path / "made" / "cache").stat().st_mode)
    group_readable = stat.S_IMODE((tmp_path / "group-readable").stat().st_mode)
    warned = {}
    for name, mode in [("owner-only", 0o700), ("usual", 0o755), ("group", 0o770), ("all", 0o1777)]:
        directory = tmp_path / name
        directory.mkdir()
        directory.chmod(mode)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            FileSystemCache(directory)
        warned[name] = _warnings(caplog)
    record(
        111,
        "Hardening 11.11: the permissions of the cache directory",
        requirement="a directory the cache creates is owner-only (0o700; 0o750 for files of"
        " mode 0o640); an existing one its group or others can write to is warned about, once",
        figures={
            "created (umask 022)": f"{made:o}",
            "created for mode 0o640": f"{group_readable:o}",
            "warned about": ", ".join(n for n, w in warned.items() if w) or "none",
        },
        name="directory",
    )
    assert made == 0o700
    assert group_readable == 0o750
    assert [n for n, w in warned.items() if w] == ["group", "all"]
    assert all(len(w) == 1 and str(tmp_path) in w[0] for w in warned.values() if w)
    assert "writable by its group and others" in warned["all"][0]


def test_a_directory_planted_as_an_entry_stays_and_is_a_miss(tmp_path: Path) -> None:
    """A directory planted at an entry's path stays (it may hold anything) and is a miss."""
    cache = FileSystemCache(tmp_path / "cache")
    (tmp_path / "cache" / _name("k")).mkdir()
    assert cache.lookup("k") is NO_VALUE
    assert cache.set("k", 1) is False
    assert cache.delete("k") is False
    assert cache.clear() is True
    assert (tmp_path / "cache" / _name("k")).is_dir()
