"""Shared fixtures: an isolated environment and fresh layer stacks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import stratacache
from stratacache import CacheStack, pluginmanager, registry

from .redis_sentinel import RedisSentinelSet
from .redis_server import RedisServer
from .redis_topologies import RedisClusterNodes

ROOT = Path(__file__).resolve().parent.parent

# Hypothesis fails an example slower than 200 ms ("deadline"): on a shared machine, with the
# suite in several processes, that is the load, not the code. Tests that bound a time say so.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


RUN_ALONE = {
    # The reliability scenarios that drive real servers with worker processes and assert
    # timings under the load they make (read timeouts of 0.2 s, lock TTLs, failover windows).
    *(
        f"reliability/{name}.py"
        for name in (
            "test_async_faults",
            "test_atomic_writes",
            "test_filesystem_stress",
            "test_hardening_atomic",
            "test_hardening_connections",
            "test_invalidation_faults",
            "test_recovery_outage",
            "test_redis_faults",
            "test_topology_errors",
            "test_topology_faults",
            "test_topology_fencing",
            "test_topology_resharding",
        )
    ),
    # The session's Redis Cluster and Sentinel set, whose 1 s node timeouts make a starved
    # node look failed, and the failovers the tests make on them (each xdist worker would
    # start its own set).
    "test_topologies.py",
    "test_redis_topologies.py",
    "test_async_redis.py",
    "test_cli.py",
    "test_tags.py",
    "test_redis_tls_acl.py",
    # Windows of real time: a change reaching another instance, refreshes and timeouts.
    "test_invalidation.py",
    "test_invalidation_tags.py",
    "test_invalidation_topologies.py",
    "test_staleness_benchmark.py",
    "test_freshness.py",
    "test_fresh_atomic.py",
    "test_recovery.py",
    "test_recovery_local.py",
    # Two-worker web services: which worker the kernel hands a request is up to the load.
    "test_examples.py",
}
"""The test modules marked ``under_load``: ``make pytest`` runs them alone, one after another,
after the rest of the suite has run in parallel, so that no other test's load skews them.
(Split into two lanes side by side, 2026-12-01, the step took 4:53 and 6:51 instead of
7:35, and failed 1 and 4 of their tests in two fresh-clone runs: they load each other.)"""


LONG_FIRST = (
    "test_otel.py",  # callgrind: four runs of Python under valgrind, 100-200 s
    "test_packaging.py",  # builds the sdist, collects the suite from it, builds its docs
    "test_benchmarks.py",
    "test_docs_site.py",
    "reliability/test_hardening_keys.py",
    "reliability/test_models.py",
)
"""The modules whose tests take longest, collected first (each keeps its own order), so that
pytest-xdist, which hands out modules in the order collected, starts them first rather
than last: collected in file order, test_otel.py began about 3 minutes into the parallel
step and ended it 3 minutes later."""


def _module_of(item: pytest.Item) -> str | None:
    """The item's module path under tests/ (``reliability/test_x.py``), or None."""
    tests = Path(__file__).resolve().parent
    path = Path(str(item.fspath)).resolve()
    return path.relative_to(tests).as_posix() if path.is_relative_to(tests) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collect LONG_FIRST first; mark the tests of the RUN_ALONE modules ``under_load``."""
    modules = {id(item): _module_of(item) or "" for item in items}
    sizes = Counter(modules.values())
    first = {module: rank for rank, module in enumerate(LONG_FIRST)}
    # Then the biggest modules first, as xdist's own reordering (which the Makefile turns
    # off, --no-loadscope-reorder, for this order to hold) would; sort() is stable, so each
    # module's tests keep their order.
    items.sort(key=lambda i: (first.get(modules[id(i)], len(first)), -sizes[modules[id(i)]]))
    for item in items:
        if modules[id(item)] in RUN_ALONE:
            item.add_marker(pytest.mark.under_load)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No CACHE_* variable or .env file of the machine leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith(("CACHE_", "LOCALCACHE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield
    stratacache.cache._state = None


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """A fresh plugin manager, so plugins registered by a test leave with it."""
    pluginmanager.reset()
    registry.refresh()
    yield
    pluginmanager.reset()
    registry.refresh()


@pytest.fixture
def stack() -> CacheStack:
    """A stack with a SimpleCache shared layer in front of the default local layers."""
    stack = CacheStack()
    stack.configure({"CACHE_TYPE": "SimpleCache"})
    return stack


def root_pythonpath(*first: str | Path) -> str:
    """``PYTHONPATH`` for a subprocess that imports these tests: ``first``, then the root.

    The inherited ``PYTHONPATH`` follows, so that a worktree's own core (on it) still comes
    before the copy installed in the virtual environment.
    """
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join([*map(str, first), str(ROOT), *inherited])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a fresh subprocess: no CACHE_* variables, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("CACHE_", "LOCALCACHE_"))
    }
    env.update(extra)
    return env


def declaring_site(site: Path, name: str, module: str) -> Path:
    """Write into ``site`` a distribution that declares the hook plugin ``name = module``.

    Put ``site`` on a subprocess's ``PYTHONPATH``: it finds the plugin through its entry
    point, as it finds those of stratacache's own metadata.
    """
    info = site / f"{name}_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stratacache.plugins]\n{name} = {module}\n")
    return site


def run_python(
    code: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this virtual environment; fail on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(env) if env is not None else clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session; tests that break servers start their own."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server, emptied before the test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def make_redis_server(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start dedicated redis-servers that the test may kill, pause or restart."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(servers)}").start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """One Redis Cluster (3 masters, 3 replicas) for the session; use :func:`cluster`."""
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"))
    try:
        yield nodes.start()
    finally:
        nodes.stop()


@pytest.fixture
def cluster(redis_cluster: RedisClusterNodes) -> Iterator[RedisClusterNodes]:
    """The session's cluster, healthy and emptied before the test, healthy again after it.

    A test may kill, restart or fail over nodes and move slots: the teardown repairs the
    cluster (roles may differ from the start), or fails the test that broke it for good.
    """
    redis_cluster.wait_healthy()
    redis_cluster.flush()
    yield redis_cluster
    redis_cluster.wait_healthy()


@pytest.fixture
def make_redis_cluster(tmp_path: Path) -> Iterator[Callable[..., RedisClusterNodes]]:
    """Start private clusters (keyword arguments of RedisClusterNodes), stopped after the test."""
    clusters: list[RedisClusterNodes] = []

    def make(**options: Any) -> RedisClusterNodes:
        nodes = RedisClusterNodes(tmp_path / f"cluster{len(clusters)}", **options)
        clusters.append(nodes)
        return nodes.start()

    yield make
    for nodes in clusters:
        nodes.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    """One master, replica and 3 sentinels for the session; use :func:`sentinel`."""
    servers = RedisSentinelSet(tmp_path_factory.mktemp("sentinel"))
    try:
        yield servers.start()
    finally:
        servers.stop()


@pytest.fixture
def sentinel(redis_sentinel: RedisSentinelSet) -> Iterator[RedisSentinelSet]:
    """The session's sentinel set, healthy and emptied before the test, healthy after it.

    A test may fail over or kill the master: the teardown brings the old master back as a
    replica, so the next test again has a master, a replica and three sentinels.
    """
    redis_sentinel.wait_healthy()
    redis_sentinel.flush()
    yield redis_sentinel
    redis_sentinel.wait_healthy()


@pytest.fixture
def make_redis_sentinel(tmp_path: Path) -> Iterator[Callable[..., RedisSentinelSet]]:
    """Start private sentinel sets (keyword arguments of RedisSentinelSet), stopped after."""
    sets: list[RedisSentinelSet] = []

    def make(**options: Any) -> RedisSentinelSet:
        servers = RedisSentinelSet(tmp_path / f"sentinel{len(sets)}", **options)
        sets.append(servers)
        return servers.start()

    yield make
    for servers in sets:
        servers.stop()
