"""FileSystemCache: what the conformance suite cannot see (files, processes, hostile input)."""

from __future__ import annotations

import logging
import math
import os
import struct
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import pytest

from stratacache import NO_VALUE, DeserializationError, JsonSerializer, SerializationError
from stratacache_plugins.filesystem import FileSystemCache

from .conftest import clean_env, run_python

LOGGER = "stratacache_plugins.filesystem"


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.entry"))


def only_entry(directory: Path) -> Path:
    (path,) = entries(directory)
    return path


def spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out


# -- persistence and sharing --------------------------------------------------------------


def test_entries_survive_a_restart(tmp_path: Path) -> None:
    first = FileSystemCache(tmp_path)
    first.set("forever", {"a": [1]}, timeout=0)
    first.set("hour", "h", timeout=3600)
    first.set("none", None)
    first.set("gone", "g", timeout=-1)
    first.set_tracked("tracked", 1, None, "grp")

    second = FileSystemCache(tmp_path)
    assert second.get("forever") == {"a": [1]}
    assert second.get("hour") == "h"
    assert second.lookup("none") is None
    assert second.lookup("gone") is NO_VALUE
    assert second.clear_tracked("grp") == 1


@pytest.mark.subprocess
def test_processes_read_each_others_entries(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path, key_prefix="app:")
    cache.set("from-parent", {"pid": os.getpid()})
    child = f"""
        import os
        from stratacache_plugins.filesystem import FileSystemCache
        cache = FileSystemCache({str(tmp_path)!r}, key_prefix="app:")
        assert cache.get("from-parent") == {{"pid": {os.getpid()}}}, cache.get("from-parent")
        cache.set("from-child", {{"pid": os.getpid()}})
        print(os.getpid())
    """
    pid = int(run_python(textwrap.dedent(child)).stdout)
    assert cache.get("from-child") == {"pid": pid}


@pytest.mark.subprocess
def test_inc_is_atomic_across_processes(tmp_path: Path) -> None:
    child = f"""
        from stratacache_plugins.filesystem import FileSystemCache
        cache = FileSystemCache({str(tmp_path)!r})
        for _ in range(200):
            cache.inc("hits")
    """
    children = [spawn(child) for _ in range(3)]
    cache = FileSystemCache(tmp_path)
    for _ in range(200):
        cache.inc("hits")
    for process in children:
        finish(process)
    assert cache.get("hits") == 800


# -- the threshold ------------------------------------------------------------------------


def test_threshold_is_respected(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path, threshold=20)
    for i in range(200):
        cache.set(f"k{i}", i)
        assert len(entries(tmp_path)) <= 20
    assert cache.get("k199") == 199


def test_expired_entries_are_evicted_before_fresh_ones(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path, threshold=10)
    for i in range(6):
        cache.set(f"fresh{i}", i, timeout=0)
    for i in range(4):  # written last, so a pure oldest-first policy would keep them
        cache.set(f"short{i}", i, timeout=0.05)
    time.sleep(0.1)
    cache.set("fresh6", 6)  # 11 entries: the prune runs
    assert len(entries(tmp_path)) == 7
    assert cache.get_many(*(f"fresh{i}" for i in range(7))) == list(range(7))


def test_writes_do_not_list_the_directory_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FileSystemCache(tmp_path, threshold=100)
    listings = 0
    real_scandir, real_listdir = os.scandir, os.listdir

    # Listings of the cache's directory only: another thread's import (the invalidation
    # listener's, a refresh worker's) lists sys.path directories meanwhile.
    def of_the_cache(args: tuple[Any, ...]) -> bool:
        return bool(args) and str(args[0]).startswith(str(tmp_path))

    def scandir(*args: Any) -> Any:
        nonlocal listings
        listings += of_the_cache(args)
        return real_scandir(*args)

    def listdir(*args: Any) -> Any:
        nonlocal listings
        listings += of_the_cache(args)
        return real_listdir(*args)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    for i in range(100):
        cache.set(f"k{i}", i)
    for i in range(300):  # overwrites create no file
        cache.set(f"k{i % 100}", i)
    assert listings == 0
    for i in range(100, 600):
        cache.set(f"k{i}", i)
    assert 0 < listings <= 50  # a prune every ~threshold/10 new entries, not every write
    monkeypatch.undo()
    assert len(entries(tmp_path)) <= 100


def test_threshold_zero_means_no_limit_and_negative_is_refused(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path, threshold=0)
    for i in range(600):
        cache.set(f"k{i}", i)
    assert len(entries(tmp_path)) == 600
    with pytest.raises(ValueError, match=r"threshold must be >= 0 \(0 = no limit\), got -1"):
        FileSystemCache(tmp_path, threshold=-1)


def test_a_platform_without_flock_is_refused_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows has no fcntl.flock: the cache refuses to start rather than run unlocked.
    from stratacache_plugins.filesystem import tracking

    monkeypatch.setattr(tracking, "HAS_FLOCK", False)
    with pytest.raises(NotImplementedError, match=r"FileSystemCache needs fcntl\.flock") as err:
        FileSystemCache(tmp_path / "never")
    assert "Use SimpleCache" in str(err.value)
    assert not (tmp_path / "never").exists(), "refused before creating anything"


# -- corrupted entries --------------------------------------------------------------------

HEADER = struct.Struct("<4sB3xd")


def _corrupt(kind: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = path.read_bytes()
    if kind == "random-bytes":
        path.write_bytes(os.urandom(200))
    elif kind == "empty-file":
        path.write_bytes(b"")
    elif kind == "short-header":
        path.write_bytes(data[:10])
    elif kind == "bad-magic":
        path.write_bytes(b"JUNK" + data[4:])
    elif kind == "future-version":
        path.write_bytes(HEADER.pack(b"STRC", 99, 0.0) + data[HEADER.size :])
    elif kind == "nan-expiry":
        path.write_bytes(HEADER.pack(b"STRC", 1, float("nan")) + data[HEADER.size :])
    elif kind == "truncated-payload":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "class-gone":
        monkeypatch.delattr(sys.modules["stratacache_test_gone"], "Gone")


CORRUPTIONS = [
    "random-bytes",
    "empty-file",
    "short-header",
    "bad-magic",
    "future-version",
    "nan-expiry",
    "truncated-payload",
    "class-gone",
]


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupted_entry_is_a_logged_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    module = types.ModuleType("stratacache_test_gone")
    gone = type("Gone", (), {"__module__": module.__name__})
    module.Gone = gone  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    cache = FileSystemCache(tmp_path)
    cache.set("victim", gone() if kind == "class-gone" else list(range(1000)))
    path = only_entry(tmp_path)
    _corrupt(kind, path, monkeypatch)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.lookup("victim") is NO_VALUE
        assert cache.get("victim") is None
    assert not path.exists()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "'victim'" in record.getMessage()


@pytest.mark.parametrize("kind", ["bad-magic", "nan-expiry", "truncated-payload"])
def test_lookup_entry_of_a_corrupted_entry_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    cache = FileSystemCache(tmp_path)
    cache.set("victim", list(range(1000)))
    path = only_entry(tmp_path)
    _corrupt(kind, path, monkeypatch)
    assert cache.lookup_entry("victim") == (NO_VALUE, None)
    assert not path.exists()
    assert cache.stats.deserialization_failures == 1


def test_has_reads_the_header_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = FileSystemCache(tmp_path)
    cache.set("truncated", list(range(1000)))
    path = only_entry(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    assert cache.has("truncated") is True  # the payload is not read...
    assert cache.lookup("truncated") is NO_VALUE  # ...the read finds the damage
    cache.set("junk", 1)
    only_entry(tmp_path).write_bytes(b"junk")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.has("junk") is False
    assert entries(tmp_path) == []
    (record,) = caplog.records
    assert "'junk'" in record.getMessage()


def test_a_custom_serializer_error_is_a_miss_too(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path, serializer=JsonSerializer())
    cache.set("k", {"a": 1})
    path = only_entry(tmp_path)
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DeserializationError):
        JsonSerializer().loads(path.read_bytes()[HEADER.size :])
    assert cache.lookup("k") is NO_VALUE
    assert not path.exists()


def test_an_unserializable_value_raises_and_writes_nothing(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    cache.set("k", "old")
    with pytest.raises(SerializationError):
        cache.set("k", lambda: None)
    with pytest.raises(SerializationError):
        cache.add("new", lambda: None)
    assert cache.get("k") == "old"
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".count", ".entry"]


# -- hostile keys -------------------------------------------------------------------------

HOSTILE_KEYS = [
    "../x",
    "../../../../tmp/escaped",
    "/etc/passwd",
    "a\x00b",
    "",
    ".",
    "..",
    "CON",
    "a/b\\c",
    "line\nbreak",
    "ünïcødé ✓ 日本",
    "\ud800 lone surrogate",
    "k" * 10240,
    "k" * 10239 + "1",
    "k" * 10239 + "2",
]


def _files_under(root: Path) -> set[Path]:
    return {Path(d, f) for d, _dirs, files in os.walk(root) for f in files}


@pytest.mark.parametrize("key_prefix", ["", "../../"], ids=["no-prefix", "hostile-prefix"])
def test_hostile_keys_stay_inside_the_directory(tmp_path: Path, key_prefix: str) -> None:
    before = _files_under(tmp_path.parent)
    directory = tmp_path / "cache"
    cache = FileSystemCache(directory, key_prefix=key_prefix)
    for i, key in enumerate(HOSTILE_KEYS):
        cache.set_tracked(key, i, None, "grp/../" + key)
    new_files = _files_under(tmp_path.parent) - before
    assert all(path.parent == directory for path in new_files), new_files
    assert len(entries(directory)) == len(HOSTILE_KEYS)  # no two keys share a file
    assert cache.get_many(*HOSTILE_KEYS) == list(range(len(HOSTILE_KEYS)))
    assert cache.clear_tracked("grp/../" + HOSTILE_KEYS[3]) == 1


# -- files the cache owns -----------------------------------------------------------------


def test_foreign_files_are_never_removed(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path, threshold=2)
    foreign = ["notes.txt", "notes.entry", "abc123.entry", "foreign.tmp", "ABC.group", "x.lock"]
    for name in foreign:
        (tmp_path / name).write_text("mine")
    (tmp_path / "subdir").mkdir()
    for i in range(5):  # prunes
        cache.set_tracked(f"k{i}", i, None, "grp")
    assert cache.clear() is True
    mine = ["stratacache.count"]  # the entry count every process shares
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*foreign, "subdir", *mine])


def test_files_are_private_by_default(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    cache.set_tracked("k", 1, None, "grp")
    cache.inc("n")
    modes = {p.suffix: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {".entry": 0o600, ".group": 0o600, ".lock": 0o600, ".count": 0o600}
    shared = FileSystemCache(tmp_path / "shared", mode=0o640)
    shared.set("k", 1)
    assert only_entry(tmp_path / "shared").stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is read on Linux")
def test_the_default_directory_is_the_user_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    FileSystemCache().set("k", 1)
    assert len(entries(tmp_path / "xdg" / "stratacache")) == 1


def test_lookup_entry_remaining_is_the_header_expiry_on_the_cache_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    cache = FileSystemCache(tmp_path, default_timeout=10, clock=lambda: now[0])
    cache.set("a", "v")
    cache.set("forever", "f", timeout=0)
    now[0] += 2.5
    assert cache.lookup_entry("a") == ("v", 7.5)
    assert cache.lookup_entry("forever") == ("f", math.inf)
    reader = FileSystemCache(tmp_path, clock=lambda: now[0] + 5)  # another process's clock
    assert reader.lookup_entry("a") == ("v", 2.5)
    now[0] += 7.5
    assert cache.lookup_entry("a") == (NO_VALUE, None)
    assert cache.lookup_entry("absent") == (NO_VALUE, None)
    assert len(entries(tmp_path)) == 1, "the expired entry was removed when read"


def test_add_replaces_only_an_expired_entry(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    cache.set("expired", "old", timeout=-1)
    assert cache.add("expired", "new") is True
    assert cache.add("expired", "newer") is False
    assert cache.get("expired") == "new"
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".count", ".entry"]  # no .tmp


def test_from_options_takes_the_generic_settings(tmp_path: Path) -> None:
    options = {"cache_dir": str(tmp_path), "threshold": 7, "key_prefix": "p:", "host": "x"}
    cache = FileSystemCache.from_options(options, explicit={"mode": 0o640})
    assert repr(cache) == (
        f"FileSystemCache(cache_dir={str(tmp_path)!r}, threshold=7, default_timeout=300)"
    )
    cache.set("k", 1)
    assert FileSystemCache(tmp_path, key_prefix="p:").get("k") == 1
    assert FileSystemCache(tmp_path).get("k") is None


# -- key tracking -------------------------------------------------------------------------


def test_clear_tracked_counts_each_existing_key_once(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    for key in ["a", "b", "a", "c", "a", "b", "line\nbreak"]:
        cache.set_tracked(key, key, None, "grp")
    cache.set("untracked", 1)
    cache.delete("c")
    (index,) = tmp_path.glob("*.group")
    with index.open("ab") as file:
        file.write(b"not json\n[1, 2]\n")  # garbage lines are skipped
    assert cache.clear_tracked("grp") == 3
    assert not index.exists()
    assert cache.get_many("a", "b", "line\nbreak", "untracked") == [None, None, None, 1]
    assert cache.clear_tracked("grp") == 0


def test_index_files_are_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FileSystemCache(tmp_path)
    monkeypatch.setattr(cache, "_index_min_size", 300)
    for i in range(600):
        cache.set_tracked(f"key{i % 10}", i, None, "grp")
        if i % 7 == 0:
            cache.delete(f"key{i % 10}")
        (index,) = tmp_path.glob("*.group")
        assert index.stat().st_size <= 300 + len('"key0"\n')
    live = [f"key{i}" for i in range(10) if cache.has(f"key{i}")]
    lines = index.read_text().splitlines()
    assert len(lines) > len(set(lines))  # duplicates since the last compaction...
    assert cache.clear_tracked("grp") == len(live)  # ...are counted once
