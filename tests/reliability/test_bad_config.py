"""Scenario 14: bad configuration fails at start-up with one clear error.

Each case is a mistake a user makes, made the way the user makes it: a Flask-style mapping
given to ``stratacache.configure()``, environment variables read by ``configure()`` at the
start of a fresh process, or the options of ``@cached_for``. Each must raise, at once, one
error of the expected type whose message names the key (or option) at fault, shows the bad
value (unless it is a secret, which must not show), and says what to write instead; the
error must be ours, raised from stratacache's own code, not a traceback from deep inside
pydantic, redis or cachelib.

``tests/test_settings.py`` checks the settings model's own messages; this suite goes through
the public entry points, adds the backends' and the decorator's refusals, and records the
figure: bad settings handled / tried.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

import stratacache
from stratacache import ConfigurationError, cached_for
from tests.conftest import clean_env

from .figures import record

ROOT = Path(__file__).resolve().parents[2]
OURS = (ROOT / "core", ROOT / "plugins")

How = Literal["configure", "environment", "decorator", "call"]


@dataclass(frozen=True)
class Case:
    """One bad setting and what its error must say.

    Attributes:
        id: A readable name.
        how: How the user gives it: ``configure`` (a mapping), ``environment`` (variables
            read by ``configure()`` in a fresh process), ``decorator`` (``@cached_for``
            options) or ``call`` (another misuse of the public API).
        given: The mapping, the environment, the decorator's options, or a callable.
        error: The exception type expected, exactly.
        names: The key or option the message must name.
        shows: The bad value as the message must show it (None: there is nothing to show).
        fix: What the message must tell the user to do.
        hides: A secret the message must not reveal.
        prelude: Python run first in the fresh process (environment cases).
    """

    id: str
    how: How
    given: Any
    error: type[BaseException]
    names: str
    shows: str | None
    fix: str
    hides: str | None = None
    prelude: str = ""

    def setting(self) -> str:
        """The bad setting as the user wrote it, for the recorded table."""
        if self.how in ("configure", "environment"):
            pairs = ", ".join(f"{k}={v!r}" for k, v in self.given.items())
            pairs = pairs.replace(repr(self.hides), "'<secret>'") if self.hides else pairs
            pairs = pairs.replace("{workdir}", "<tmp>")
            return pairs + (" (environment)" if self.how == "environment" else "")
        if self.how == "decorator":
            return "@cached_for(" + ", ".join(f"{k}={v!r}" for k, v in self.given.items()) + ")"
        return str(self.given.__doc__)


@dataclass
class Outcome:
    """What a case raised: the type (module.qualname), the message, where it was raised."""

    type: str | None
    message: str = ""
    where: str = ""
    problems: int | None = None
    first_problem: str = field(default="")


def _plain(x: int) -> int:
    return x


async def _async_generator(x: int) -> Any:
    yield x


def _no_parentheses() -> Any:
    """@cached_for without parentheses"""
    return cached_for(_plain)  # type: ignore[call-overload,arg-type]


def _async_generator_function() -> Any:
    """@cached_for(minutes=1) on an async generator"""
    return cached_for(minutes=1)(_async_generator)


def _classmethod_object() -> Any:
    """@cached_for(minutes=1) above @classmethod"""
    return cached_for(minutes=1)(classmethod(_plain))  # type: ignore[arg-type]


def _configure_with_a_string() -> Any:
    """configure('CACHE_TYPE=SimpleCache')"""
    return stratacache.configure("CACHE_TYPE=SimpleCache")


FS = {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": "{workdir}/cache"}
# A backend's keys are validated by its own options model, so each case selects the
# backend that owns the key (a key for a backend no tier uses is a case of its own).
REDIS = {"CACHE_TYPE": "RedisCache"}
ATOMIC = {"CACHE_TYPE": "RedisCacheAtomic"}
SECRET = "hunter2"  # too short to be a secret key

CASES = [
    # -- types --------------------------------------------------------------------------
    Case(
        "timeout-not-a-number",
        "configure",
        {"CACHE_DEFAULT_TIMEOUT": "abc"},
        ConfigurationError,
        "CACHE_DEFAULT_TIMEOUT",
        "'abc'",
        "expected a whole number of seconds",
    ),
    Case(
        "timeout-with-a-fraction",
        "configure",
        {"LOCALCACHE_DEFAULT_TIMEOUT": 1.5},
        ConfigurationError,
        "LOCALCACHE_DEFAULT_TIMEOUT",
        "1.5",
        "expected a whole number of seconds",
    ),
    Case(
        "threshold-a-boolean",
        "configure",
        {**FS, "CACHE_THRESHOLD": True},
        ConfigurationError,
        "CACHE_THRESHOLD",
        "True",
        "expected a whole number >= 0",
    ),
    Case(
        "key-prefix-not-a-string",
        "configure",
        {"CACHE_KEY_PREFIX": 5},
        ConfigurationError,
        "CACHE_KEY_PREFIX",
        "5",
        "expected any string",
    ),
    Case(
        "options-a-list",
        "configure",
        {"CACHE_OPTIONS": [384]},
        ConfigurationError,
        "CACHE_OPTIONS",
        "[384]",
        "must be a JSON object",
    ),
    Case(
        "stats-not-a-boolean",
        "configure",
        {"CACHE_STATS": "maybe"},
        ConfigurationError,
        "CACHE_STATS",
        "'maybe'",
        "expected true or false",
    ),
    # -- ranges -------------------------------------------------------------------------
    Case(
        "timeout-negative",
        "configure",
        {"CACHE_DEFAULT_TIMEOUT": -30},
        ConfigurationError,
        "CACHE_DEFAULT_TIMEOUT",
        "-30",
        ">= 0 (0 = never expire)",
    ),
    Case(
        "timeout-infinite",
        "configure",
        {"CACHE_DEFAULT_TIMEOUT": float("inf")},
        ConfigurationError,
        "CACHE_DEFAULT_TIMEOUT",
        "inf",
        "expected a whole number of seconds",
    ),
    Case(
        "threshold-negative",
        "configure",
        {**FS, "CACHE_THRESHOLD": -10},
        ConfigurationError,
        "CACHE_THRESHOLD",
        "-10",
        "0 = no limit",
    ),
    Case(
        "port-zero",
        "configure",
        {**REDIS, "CACHE_REDIS_PORT": 0},
        ConfigurationError,
        "CACHE_REDIS_PORT",
        "0",
        "a port number from 1 to 65535",
    ),
    Case(
        "connect-timeout-zero",
        "configure",
        {**REDIS, "CACHE_REDIS_CONNECT_TIMEOUT": 0},
        ConfigurationError,
        "CACHE_REDIS_CONNECT_TIMEOUT",
        "0",
        "a number of seconds > 0",
    ),
    Case(
        "atomic-retries-zero",
        "configure",
        {**ATOMIC, "CACHE_ATOMIC_RETRIES": 0},
        ConfigurationError,
        "CACHE_ATOMIC_RETRIES",
        "0",
        ">= 1",
    ),
    Case(
        "secret-key-too-short",
        "configure",
        {"CACHE_SECRET_KEY": SECRET},
        ConfigurationError,
        "CACHE_SECRET_KEY",
        None,
        "use at least 16 random characters",
        hides=SECRET,
    ),
    # -- backends -----------------------------------------------------------------------
    Case(
        "backend-misspelt",
        "configure",
        {"CACHE_TYPE": "RedisCach"},
        ConfigurationError,
        "CACHE_TYPE",
        "'RedisCach'",
        "Did you mean 'RedisCache'?",
    ),
    Case(
        "backend-lowercase",
        "configure",
        {"LOCALCACHE_TYPE": "simplecache"},
        ConfigurationError,
        "LOCALCACHE_TYPE",
        "'simplecache'",
        "Did you mean 'SimpleCache'?",
    ),
    Case(
        "backend-module-missing",
        "configure",
        {"CACHE_TYPE": "mycompany.caches.FastCache"},
        ConfigurationError,
        "CACHE_TYPE",
        "'mycompany.caches.FastCache'",
        "Give an installed name, or the dotted path of a backend class",
    ),
    Case(
        "backend-path-to-a-module",
        "configure",
        {"CACHE_TYPE": "stratacache_plugins.simple"},
        ConfigurationError,
        "CACHE_TYPE",
        "'stratacache_plugins.simple'",
        "A backend is a class deriving from stratacache.Backend",
    ),
    Case(
        # cachelib's class paths select our backend of the same name (issue 11, migration);
        # one we do not ship is refused, naming what is installed.
        "backend-cachelib-class",
        "configure",
        {"CACHE_TYPE": "cachelib:MemcachedCache"},
        ConfigurationError,
        "CACHE_TYPE",
        "'cachelib:MemcachedCache'",
        "no backend 'MemcachedCache' is installed",
    ),
    Case(
        "local-layer-not-in-process",
        "configure",
        {"LOCALCACHE_TYPE": "RedisCacheNoExceptions"},
        ConfigurationError,
        "LOCALCACHE_TYPE",
        "'RedisCacheNoExceptions'",
        "put it in CACHE_TYPE instead",
    ),
    Case(
        "by-reference-layer-serializes",
        "configure",
        {"LOCALCACHE_NO_SERIALIZER_TYPE": "FileSystemCache"},
        ConfigurationError,
        "LOCALCACHE_NO_SERIALIZER_TYPE",
        "'FileSystemCache'",
        "like SimpleCacheNoSerializer",
    ),
    Case(
        "serializer-unknown",
        "configure",
        {"CACHE_SERIALIZER": "yaml"},
        ConfigurationError,
        "CACHE_SERIALIZER",
        "'yaml'",
        "registered: ",
    ),
    # -- URLs and hosts -----------------------------------------------------------------
    Case(
        "url-http",
        "configure",
        {**REDIS, "CACHE_REDIS_URL": "http://cache.internal:6379"},
        ConfigurationError,
        "CACHE_REDIS_URL",
        "'http://cache.internal:6379'",
        "use redis://host:port/db",
    ),
    Case(
        "url-bad-port",
        "configure",
        {**REDIS, "CACHE_REDIS_URL": "redis://:bad:port"},
        ConfigurationError,
        "CACHE_REDIS_URL",
        "'redis://:bad:port'",
        "expected a redis://, rediss:// or unix:// URL",
    ),
    Case(
        "url-without-scheme",
        "configure",
        {**REDIS, "CACHE_REDIS_URL": "localhost:6379"},
        ConfigurationError,
        "CACHE_REDIS_URL",
        "'localhost:6379'",
        "write redis://host:port/db",
    ),
    Case(
        "url-database-not-a-number",
        "configure",
        {**REDIS, "CACHE_REDIS_URL": "redis://localhost:6379/cache"},
        ConfigurationError,
        "CACHE_REDIS_URL",
        "'redis://localhost:6379/cache'",
        "write e.g. redis://localhost:6379/0",
    ),
    Case(
        "url-unix-without-path",
        "configure",
        {**REDIS, "CACHE_REDIS_URL": "unix://"},
        ConfigurationError,
        "CACHE_REDIS_URL",
        "'unix://'",
        "e.g. unix:///run/redis.sock",
    ),
    Case(
        "host-with-port",
        "configure",
        {**REDIS, "CACHE_REDIS_HOST": "localhost:6379"},
        ConfigurationError,
        "CACHE_REDIS_HOST",
        "'localhost:6379'",
        "give the port apart (CACHE_REDIS_PORT",
    ),
    Case(
        "url-query-db-not-a-number",
        "configure",
        {**REDIS, "CACHE_REDIS_URL": "redis://localhost:6379/0?db=abc"},
        ConfigurationError,
        "CACHE_REDIS_URL",
        "'redis://localhost:6379/0?db=abc'",
        "db='abc': not a whole number",
    ),
    Case(
        "url-host-too-long",
        "configure",
        {**REDIS, "CACHE_REDIS_HOST": "cache-" + "x" * 300},
        ConfigurationError,
        "CACHE_REDIS_HOST",
        "'cache-xxx",
        "DNS allows at most 253",
    ),
    # -- bounds (issue 11, items 3 and 17) ------------------------------------------------
    Case(
        "timeout-over-ten-years",
        "configure",
        {"CACHE_DEFAULT_TIMEOUT": 10**16},
        ConfigurationError,
        "CACHE_DEFAULT_TIMEOUT",
        "10000000000000000",
        "at most 315360000 (10 years)",
    ),
    Case(
        "local-timeout-over-ten-years",
        "configure",
        {"LOCALCACHE_DEFAULT_TIMEOUT": 315360001},
        ConfigurationError,
        "LOCALCACHE_DEFAULT_TIMEOUT",
        "315360001",
        "at most 315360000 (10 years)",
    ),
    Case(
        "read-timeout-infinite",
        "configure",
        {**REDIS, "CACHE_REDIS_READ_TIMEOUT": float("inf")},
        ConfigurationError,
        "CACHE_REDIS_READ_TIMEOUT",
        "inf",
        "at most 3600 (1 hour)",
    ),
    Case(
        "env-lock-timeout-infinite",
        "environment",
        {**ATOMIC, "CACHE_ATOMIC_LOCK_TIMEOUT": "inf"},
        ConfigurationError,
        "CACHE_ATOMIC_LOCK_TIMEOUT",
        "'inf'",
        "at most 86400 (1 day)",
    ),
    Case(
        "env-secret-key-empty-list",
        "environment",
        {"CACHE_SECRET_KEY": "[]"},
        ConfigurationError,
        "CACHE_SECRET_KEY",
        None,
        "unset CACHE_SECRET_KEY to store them unsigned",
    ),
    # -- unknown keys -------------------------------------------------------------------
    Case(
        "key-misspelt",
        "configure",
        {"CACHE_REDIS_PORTT": 6380},
        ConfigurationError,
        "CACHE_REDIS_PORTT",
        None,
        "did you mean CACHE_REDIS_PORT?",
    ),
    Case(
        "secret-key-misspelt",
        "configure",
        {"CACHE_REDIS_PASSWD": "hunter2-hunter2"},
        ConfigurationError,
        "CACHE_REDIS_PASSWD",
        None,
        "did you mean CACHE_REDIS_PASSWORD?",
        hides="hunter2-hunter2",
    ),
    # -- what the backend refuses -------------------------------------------------------
    Case(
        "options-unknown-argument",
        "configure",
        {"CACHE_TYPE": "SimpleCache", "CACHE_OPTIONS": {"max_size": 10}},
        ConfigurationError,
        "CACHE_OPTIONS",
        "{'max_size': 10}",
        "it accepts: threshold, default_timeout",
    ),
    Case(
        "options-bad-value",
        "configure",
        {**FS, "CACHE_OPTIONS": '{"mode": "rw"}'},
        ConfigurationError,
        "CACHE_OPTIONS",
        "{'mode': 'rw'}",
        "mode must be file permissions as an int, e.g. 0o600",
    ),
    Case(
        "redis-options-misspelt",
        "configure",
        {"CACHE_TYPE": "RedisCacheNoExceptions", "CACHE_OPTIONS": {"retry_intervall": 2}},
        ConfigurationError,
        "CACHE_OPTIONS.retry_intervall",
        "=2",
        "did you mean 'retry_interval'?",
    ),
    Case(
        "redis-options-tls-on-plain-url",
        "configure",
        {**REDIS, "CACHE_OPTIONS": {"ssl_password": "hunter2-hunter2"}},
        ConfigurationError,
        "CACHE_OPTIONS.ssl_password",
        None,
        "use a rediss:// URL, or remove ssl_password",
        hides="hunter2-hunter2",
    ),
    Case(
        "redis-options-decode-responses",
        "configure",
        {**REDIS, "CACHE_OPTIONS": {"decode_responses": True}},
        ConfigurationError,
        "CACHE_OPTIONS.decode_responses",
        "True",
        "remove decode_responses",
    ),
    Case(
        "redis-options-number-as-text",
        "environment",
        {"CACHE_TYPE": "RedisCacheNoExceptions", "CACHE_OPTIONS": '{"retry_interval": "2"}'},
        ConfigurationError,
        "CACHE_OPTIONS.retry_interval",
        "'2'",
        "not text",
    ),
    Case(
        "options-shadow-a-setting",
        "configure",
        {**FS, "CACHE_OPTIONS": {"threshold": 10}},
        ConfigurationError,
        "CACHE_OPTIONS",
        "{'threshold': 10}",
        "set CACHE_THRESHOLD instead",
    ),
    Case(
        "cache-dir-a-file",
        "configure",
        {**FS, "CACHE_DIR": "{workdir}/a-file"},
        ConfigurationError,
        "CACHE_DIR",
        "a-file'",
        "give a directory path",
    ),
    Case(
        "cache-dir-under-a-file",
        "configure",
        {**FS, "CACHE_DIR": "{workdir}/a-file/cache"},
        ConfigurationError,
        "CACHE_DIR",
        "a-file/cache'",
        "give a path this process can create and write to",
    ),
    Case(
        "cache-dir-empty",
        "configure",
        {**FS, "CACHE_DIR": ""},
        ConfigurationError,
        "CACHE_DIR",
        "''",
        "unset it for the default",
    ),
    Case(
        "redis-key-prefix-unbalanced",
        "configure",
        {"CACHE_TYPE": "RedisCache", "CACHE_KEY_PREFIX": "app{"},
        ConfigurationError,
        "CACHE_KEY_PREFIX",
        "'app{'",
        "remove them",
    ),
    # -- from the environment, in a fresh process ---------------------------------------
    Case(
        "env-timeout-with-unit",
        "environment",
        {"CACHE_DEFAULT_TIMEOUT": "5m"},
        ConfigurationError,
        "CACHE_DEFAULT_TIMEOUT",
        "'5m'",
        "expected a whole number of seconds",
    ),
    Case(
        "env-backend-misspelt",
        "environment",
        {"CACHE_TYPE": "FileSystemCahce"},
        ConfigurationError,
        "CACHE_TYPE",
        "'FileSystemCahce'",
        "Did you mean 'FileSystemCache'?",
    ),
    Case(
        "env-options-not-json",
        "environment",
        {"CACHE_TYPE": "SimpleCache", "CACHE_OPTIONS": "{threshold: 10}"},
        ConfigurationError,
        "CACHE_OPTIONS",
        "'{threshold: 10}'",
        "a JSON object of extra backend arguments",
    ),
    Case(
        "env-port-with-database",
        "environment",
        {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PORT": "6379/0"},
        ConfigurationError,
        "CACHE_REDIS_PORT",
        "'6379/0'",
        "a port number from 1 to 65535",
    ),
    Case(
        "env-redis-driver-missing",
        "environment",
        {"CACHE_TYPE": "RedisCache"},
        ConfigurationError,
        "CACHE_TYPE",
        "'RedisCache'",
        "pip install 'stratacache[redis]'",
        # The redis package cannot be imported in this process, as where it is not installed.
        prelude="import sys; sys.modules['redis'] = None",
    ),
    # -- decorator options --------------------------------------------------------------
    Case(
        "no-serialization-shared",
        "decorator",
        {"minutes": 5, "no_serialization": True},
        ValueError,
        "no_serialization=True",
        None,
        "requires local_ram_cache_only=True",
    ),
    Case(
        "atomic-writes-unknown",
        "decorator",
        {"minutes": 5, "atomic_writes": "always"},
        ValueError,
        "atomic_writes",
        "'always'",
        "'at_most_once' or 'at_least_once'",
    ),
    Case(
        "duration-negative",
        "decorator",
        {"minutes": -5},
        ValueError,
        "minutes",
        "-5",
        "give days, hours, minutes and seconds >= 0",
    ),
    Case(
        "duration-infinite",
        "decorator",
        {"seconds": float("inf")},
        ValueError,
        "seconds",
        "inf",
        "give finite days, hours, minutes or seconds",
    ),
    Case(
        "duration-a-string",
        "decorator",
        {"minutes": "5"},
        TypeError,
        "minutes",
        "'5'",
        "write e.g. minutes=5",
    ),
    Case(
        "flag-a-string",
        "decorator",
        {"minutes": 5, "local_ram_cache_only": "false"},
        TypeError,
        "local_ram_cache_only",
        "'false'",
        "must be True or False",
    ),
    Case(
        "decorator-without-parentheses",
        "call",
        _no_parentheses,
        TypeError,
        "@cached_for",
        None,
        "write @cached_for(minutes=5)",
    ),
    Case(
        "decorator-on-async-generator",
        "call",
        _async_generator_function,
        TypeError,
        "async generator",
        "_async_generator",
        "cache a coroutine that collects them instead",
    ),
    Case(
        "decorator-above-classmethod",
        "call",
        _classmethod_object,
        TypeError,
        "classmethod",
        None,
        "put @cached_for below @classmethod",
    ),
    Case(
        "configure-a-string",
        "call",
        _configure_with_a_string,
        TypeError,
        "configure()",
        "'CACHE_TYPE=SimpleCache'",
        "Write configure({'CACHE_TYPE': 'SimpleCache'})",
    ),
]

ENVIRONMENT_PROBE = """
import json, traceback
{prelude}
import stratacache
try:
    stratacache.configure()
except BaseException as exc:
    print(json.dumps({{
        "type": f"{{type(exc).__module__}}.{{type(exc).__qualname__}}",
        "message": str(exc),
        "where": traceback.extract_tb(exc.__traceback__)[-1].filename,
        "problems": getattr(exc, "problems", None),
    }}))
else:
    print("null")
"""


def _qualified(error: type[BaseException]) -> str:
    return f"{error.__module__}.{error.__qualname__}"


def _outcome(found: dict[str, Any] | None) -> Outcome:
    if found is None:
        return Outcome(None)
    problems = found["problems"]
    return Outcome(
        found["type"],
        found["message"],
        found["where"],
        None if problems is None else len(problems),
        problems[0] if problems else found["message"].splitlines()[0],
    )


def _raised(exc: BaseException) -> dict[str, Any]:
    return {
        "type": _qualified(type(exc)),
        "message": str(exc),
        "where": traceback.extract_tb(exc.__traceback__)[-1].filename,
        "problems": getattr(exc, "problems", None),
    }


def _provoke(case: Case, workdir: Path) -> Outcome:
    """Make the mistake, in this process; return what was raised."""
    try:
        if case.how == "configure":
            stratacache.configure(
                {
                    k: v.replace("{workdir}", str(workdir)) if isinstance(v, str) else v
                    for k, v in case.given.items()
                }
            )
        elif case.how == "decorator":
            cached_for(**case.given)(_plain)
        else:
            case.given()
    except Exception as exc:  # which exception it is, is what the test checks
        return _outcome(_raised(exc))
    return Outcome(None)


def _provoke_in_fresh_processes(cases: list[Case], workdir: Path) -> dict[str, Outcome]:
    """Start one process per case, all at once; return what each raised."""
    processes = {
        case.id: subprocess.Popen(
            [sys.executable, "-c", ENVIRONMENT_PROBE.format(prelude=case.prelude)],
            env=clean_env(**case.given),
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case in cases
    }
    outcomes = {}
    for case_id, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes[case_id] = _outcome(json.loads(out))
    return outcomes


class _Outcomes:
    """Each case's outcome, provoked once per session and shared by the tests below."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        (workdir / "a-file").write_text("not a directory")
        self.found: dict[str, Outcome] = {}

    def __call__(self, case: Case) -> Outcome:
        if case.id not in self.found:
            if case.how == "environment":
                fresh = [c for c in CASES if c.how == "environment"]
                self.found.update(_provoke_in_fresh_processes(fresh, self.workdir))
            else:
                self.found[case.id] = _provoke(case, self.workdir)
        return self.found[case.id]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Outcomes]:
    yield _Outcomes(tmp_path_factory.mktemp("bad-config"))
    stratacache.cache._state = None


def _faults(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with the error a case raised (nothing: handled)."""
    if outcome.type is None:
        return ["nothing was raised"]
    faults = []
    if outcome.type != _qualified(case.error):
        faults.append(f"raised {outcome.type}, not {_qualified(case.error)}")
    if case.error is ConfigurationError and outcome.problems != 1:
        faults.append(f"{outcome.problems} problems reported for one bad setting")
    message = outcome.message
    if case.names not in message:
        faults.append(f"the message does not name {case.names}")
    if case.shows is not None and case.shows not in message:
        faults.append(f"the message does not show the value {case.shows}")
    if case.fix not in message:
        faults.append(f"the message does not say {case.fix!r}")
    if case.hides is not None and case.hides in message:
        faults.append("the message reveals a secret")
    where = Path(outcome.where).resolve()
    if not any(where.is_relative_to(root) for root in OURS):
        faults.append(f"raised from {where}, not from stratacache's code")
    return faults


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_setting_fails_at_start_up_with_one_clear_error(
    case: Case, outcomes: _Outcomes
) -> None:
    outcome = outcomes(case)
    assert _faults(case, outcome) == [], outcome.message


def test_every_bad_setting_is_handled(outcomes: _Outcomes) -> None:
    rows = []
    handled = 0
    for case in CASES:
        outcome = outcomes(case)
        faults = _faults(case, outcome)
        handled += not faults
        shown = outcome.first_problem.strip().replace(str(outcomes.workdir), "<tmp>")
        rows.append(
            {
                "case": case.id,
                "setting": case.setting(),
                "error": (outcome.type or "none").rpartition(".")[2],
                "message": shown if len(shown) <= 160 else shown[:157] + "...",
                "handled": "yes" if not faults else "NO: " + "; ".join(faults),
            }
        )
    kinds = {how: sum(1 for c in CASES if c.how == how) for how in ("configure", "environment")}
    record(
        14,
        "Bad configuration: one clear error at start-up",
        requirement="each bad setting raises, when configured or decorated, exactly one error"
        " of the expected type, from stratacache's code, naming the key, showing the bad"
        " value (never a secret) and saying what to write instead",
        figures={
            "handled / tried": f"{handled} / {len(CASES)}",
            "configure() mappings": kinds["configure"],
            "environments (fresh processes)": kinds["environment"],
            "decorator and API misuses": len(CASES) - sum(kinds.values()),
        },
        table=rows,
    )
    assert len({case.id for case in CASES}) == len(CASES) >= 25
    assert handled == len(CASES), [row for row in rows if row["handled"] != "yes"]
