"""The pytest plugin that runs a peer's own test suite against stratacache (``make compat``).

Loaded with ``-p adapter`` by :mod:`compat.run` in the compatibility environment
(``build/compat/venv``), before the peer's test modules are imported, it swaps the peer's
classes for ours where the test modules will look them up:

* Flask-Caching's ``flask_caching.Cache`` becomes :class:`stratacache.flask.Cache`;
* its backends (``flask_caching.backends.SimpleCache``, ``FileSystemCache``, ``NullCache``,
  ``RedisCache``, in the package and in their modules) and cachelib's (``cachelib.SimpleCache``,
  ``cachelib.simple.SimpleCache``...) become stratacache's backends of the same name.

The backends we do not ship (memcached, uWSGI, Valkey, MongoDB and DynamoDB), and the
classes of Flask-Caching's Redis Sentinel and Cluster backends (a ``CACHE_TYPE`` naming them
selects our RedisCache on that topology), are left as they are: their tests are
classified, not run against anything of ours.

The peers' ``clock`` fixture replaces ``cachelib.simple.time`` to move time forward without
sleeping; our backends take their clock as an argument instead (``clock=``), so the plugin
gives our SimpleCache and FileSystemCache a default clock that follows that fake clock while
the fixture is active (:class:`SwitchableClock`).

Every test's outcome is written as JSON to ``$COMPAT_RESULTS``: ``{nodeid: {"outcome":
"passed" | "failed" | "skipped", "message": first line of the failure or skip reason}}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import cachelib
import cachelib.base
import cachelib.file
import cachelib.redis
import cachelib.simple
import pytest

from stratacache.flask import Cache
from stratacache_plugins.filesystem import FileSystemCache
from stratacache_plugins.null import NullCache
from stratacache_plugins.rediscache import RedisCache
from stratacache_plugins.simple import SimpleCache

OURS: dict[str, type[Any]] = {
    "SimpleCache": SimpleCache,
    "FileSystemCache": FileSystemCache,
    "NullCache": NullCache,
    "RedisCache": RedisCache,
}
"""The peers' backend names and the stratacache backend each becomes."""

_CACHELIB_MODULES = (cachelib, cachelib.base, cachelib.file, cachelib.redis, cachelib.simple)
_CLOCKED = (SimpleCache, FileSystemCache)


def swap_classes() -> list[str]:
    """Put our classes where the peers' tests import theirs from; return what was swapped."""
    swapped = []
    for module in _CACHELIB_MODULES:
        for name, ours in OURS.items():
            if name in vars(module):
                setattr(module, name, ours)
                swapped.append(f"{module.__name__}.{name}")
    try:
        import flask_caching
        from flask_caching import backends
    except ImportError:  # the cachelib suite runs without Flask-Caching
        return swapped
    from flask_caching.backends import filesystemcache, nullcache, rediscache, simplecache

    flask_caching.Cache = Cache  # type: ignore[assignment,misc]
    swapped.append("flask_caching.Cache")
    for module in (backends, filesystemcache, nullcache, rediscache, simplecache):
        for name, ours in OURS.items():
            if name in vars(module):
                setattr(module, name, ours)
                swapped.append(f"{module.__name__}.{name}")
    return swapped


SWAPPED = swap_classes()


class SwitchableClock:
    """A backend's default clock that follows the peers' fake ``clock`` while it is active."""

    def __init__(self, default: Callable[[], float]) -> None:
        self.default = default
        self.fake: Callable[[], float] | None = None

    def __call__(self) -> float:
        """Return the fake clock's time while the fixture is active, else the real one's."""
        fake = self.fake
        return self.default() if fake is None else fake()


CLOCKS = [SwitchableClock(time.monotonic), SwitchableClock(time.time)]
for _cls, _clock in zip(_CLOCKED, CLOCKS, strict=True):
    _init = vars(_cls)["__init__"]  # each defines its own, with a keyword-only clock=
    _init.__kwdefaults__ = {**(_init.__kwdefaults__ or {}), "clock": _clock}


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, Any]:
    """Give the peers' fake ``clock`` to our backends, which take their clock as an argument.

    Our backends' default clock is switched to the fake one for as long as the fixture lives,
    so a backend built before the fixture (by the ``cache`` fixture, say) follows it too.
    """
    result = yield
    if fixturedef.argname == "clock" and callable(result):
        for clock in CLOCKS:
            clock.fake = result

        def restore() -> None:
            for clock in CLOCKS:
                clock.fake = None

        fixturedef.addfinalizer(restore)
    return result


class Recorder:
    """Collects each test's outcome (a failure in any phase fails it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: dict[str, dict[str, str]] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record the phase's outcome; a failed phase wins over a passed one."""
        entry = self.results.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
        if report.failed and entry["outcome"] != "failed":
            entry.update(outcome="failed", message=_first_line(report))
        elif report.skipped and entry["outcome"] == "passed":
            entry.update(outcome="skipped", message=_skip_reason(report))

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Record a module that cannot be collected (a driver we do not ship) as failed."""
        if report.failed:
            self.results[report.nodeid] = {"outcome": "failed", "message": _first_line(report)}

    @pytest.hookimpl
    def pytest_sessionfinish(self) -> None:
        """Write the outcomes as JSON."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.results, indent=1, sort_keys=True) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    """Register the recorder when ``$COMPAT_RESULTS`` names where to write."""
    target = os.environ.get("COMPAT_RESULTS")
    if target:
        config.pluginmanager.register(Recorder(Path(target)), "compat-recorder")


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message) if crash is not None else str(report.longrepr)
    lines = [line for line in text.strip().splitlines() if line.startswith("E ")]
    if lines:  # a collection error: the exception line, not the traceback's first
        text = lines[-1].removeprefix("E").strip()
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")[:300]
    return str(longrepr)[:300]
