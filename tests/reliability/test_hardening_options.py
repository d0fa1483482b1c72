"""Hardening 11.3, 11.12 and 11.17 of issue 11: options at start-up, and secrets kept hidden.

* 11.3: a Redis option redis-py would refuse (or that breaks stratacache's contract) used to
  pass ``configure()`` and then fail on every call. Each must now be refused at start-up by
  one problem naming the setting, the value and the fix, against a real redis-server; the
  corrected configuration must then serve every call. ``CACHE_ATOMIC_LOCK_TIMEOUT=inf`` made
  ``configure()`` raise ``OverflowError`` and the CLI print a traceback.
* 11.12: a password in the URL's query (``?password=``) and ``ssl_password`` in
  ``CACHE_OPTIONS`` showed wherever settings are printed, logged or raised.
* 11.17: ``CACHE_SECRET_KEY='[]'`` turned signing off silently, ``CACHE_DIR=~/x`` created a
  directory literally named ``~``, and the default timeouts had no upper bound.

The environment is the point of several cases: those run in fresh processes.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stratacache import CacheStack, ConfigurationError, cached_for
from stratacache_plugins import rediscache
from stratacache_plugins.rediscache import RedisCacheError
from tests.conftest import clean_env
from tests.redis_server import RedisServer

from .figures import record

LENIENT, ATOMIC = "RedisCacheNoExceptions", "RedisCacheAtomic"
CALLS = 100
PASSWORD = "query-Pa55word-7f3a"
SSL_PASSWORD = "ssl-key-Pa55phrase-91c2"


@dataclass(frozen=True)
class Bad:
    """One Redis setting that must be refused at start-up, and its correction."""

    id: str
    given: dict[str, Any]  # over CACHE_TYPE and CACHE_REDIS_URL (the real server's)
    names: str  # the setting the problem must name
    fix: str  # what the problem must say
    fixed: dict[str, Any]  # the corrected settings (instead of given): they serve every call
    breaks: str = "every call"  # what the setting broke when it was accepted


BAD_REDIS = [
    Bad(
        "options-typo",
        {"CACHE_OPTIONS": {"retry_intervall": 2}},
        "CACHE_OPTIONS.retry_intervall",
        "did you mean 'retry_interval'?",
        {"CACHE_OPTIONS": {"retry_interval": 2}},
    ),
    Bad(
        "ssl-option-without-tls",
        {"CACHE_OPTIONS": {"ssl_password": SSL_PASSWORD}},
        "CACHE_OPTIONS.ssl_password",
        "use a rediss:// URL, or remove ssl_password",
        {},
    ),
    Bad(
        "decode-responses",
        {"CACHE_OPTIONS": {"decode_responses": True}},
        "CACHE_OPTIONS.decode_responses",
        "remove decode_responses",
        {"CACHE_OPTIONS": {"decode_responses": False}},
        "every read of a pickled value (UnicodeDecodeError, and the entry deleted)",
    ),
    Bad(
        "query-db-not-a-number",
        {"CACHE_REDIS_URL": "{url}?db=abc"},
        "CACHE_REDIS_URL",
        "db='abc': not a whole number",
        {"CACHE_REDIS_URL": "{url}?db=1"},
    ),
    Bad(
        "query-unknown-parameter",
        {"CACHE_REDIS_URL": "{url}?socket_timout=1"},
        "CACHE_REDIS_URL",
        "did you mean 'socket_timeout'?",
        {"CACHE_REDIS_URL": "{url}?socket_timeout=1"},
    ),
    Bad(
        "host-300-characters",
        {"CACHE_REDIS_URL": "redis://" + "h" * 300 + ":6379/0"},
        "CACHE_REDIS_URL",
        "DNS allows at most 253",
        {},
    ),
    Bad(
        "host-label-64-characters",
        {"CACHE_REDIS_URL": "redis://" + "h" * 64 + ".internal:6379/0"},
        "CACHE_REDIS_URL",
        "DNS allows at most 63 between two dots",
        {},
    ),
    Bad(
        "read-timeout-infinite",
        {"CACHE_REDIS_READ_TIMEOUT": "inf"},
        "CACHE_REDIS_READ_TIMEOUT",
        "at most 3600 (1 hour)",
        {"CACHE_REDIS_READ_TIMEOUT": "3600"},
    ),
    Bad(
        "connect-timeout-1e30",
        {"CACHE_REDIS_CONNECT_TIMEOUT": 1e30},
        "CACHE_REDIS_CONNECT_TIMEOUT",
        "at most 3600 (1 hour)",
        {"CACHE_REDIS_CONNECT_TIMEOUT": 3600},
    ),
    Bad(
        "query-read-timeout-nan",
        {"CACHE_REDIS_URL": "{url}?socket_timeout=nan"},
        "CACHE_REDIS_URL",
        "a finite number",
        {"CACHE_REDIS_URL": "{url}?socket_timeout=2"},
    ),
    Bad(
        "retry-interval-text",
        {"CACHE_OPTIONS": '{"retry_interval": "2"}'},
        "CACHE_OPTIONS.retry_interval",
        "not text",
        {"CACHE_OPTIONS": '{"retry_interval": 2}'},
        "every call once Redis fails (a number plus text)",
    ),
    Bad(
        "socket-timeout-none",
        {"CACHE_OPTIONS": {"socket_timeout": None}},
        "CACHE_OPTIONS.socket_timeout",
        "would wait forever",
        {"CACHE_OPTIONS": {"socket_timeout": 2}},
        "every call hangs on a frozen server (no timeout at all)",
    ),
    Bad(
        "lock-timeout-infinite",
        {"CACHE_TYPE": ATOMIC, "CACHE_ATOMIC_LOCK_TIMEOUT": float("inf")},
        "CACHE_ATOMIC_LOCK_TIMEOUT",
        "at most 86400 (1 day)",
        {"CACHE_TYPE": ATOMIC, "CACHE_ATOMIC_LOCK_TIMEOUT": 86400},
        "configure() itself (OverflowError)",
    ),
    Bad(
        "lock-wait-1e30",
        {"CACHE_TYPE": ATOMIC, "CACHE_ATOMIC_WAIT": 1e30},
        "CACHE_ATOMIC_WAIT",
        "at most 86400 (1 day)",
        {"CACHE_TYPE": ATOMIC, "CACHE_ATOMIC_WAIT": 60},
        "an at_most_once waiter waits for ever",
    ),
]


def _settings(url: str, *layers: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {"CACHE_TYPE": LENIENT, "CACHE_REDIS_URL": url}
    for layer in layers:
        merged.update(layer)
    return {k: v.replace("{url}", url) if isinstance(v, str) else v for k, v in merged.items()}


def _failing_calls(stack: CacheStack) -> int:
    """Of ``CALLS`` calls, how many failed: raised, or erred in the shared layer.

    Each call is a decorated call (a miss, then a write), then a plain ``stack.set`` with
    the default timeout, read back from the shared layer.
    """
    shared = stack.shared_cache.cache
    failed = set()

    @cached_for(minutes=5, stack=stack)
    def square(x: int) -> int:
        return x * x

    for i in range(CALLS):
        errors = shared.stats.errors
        try:
            assert square(i) == i * i
            assert stack.set(f"plain{i}", (i, "v")) is True
            assert shared.get(f"plain{i}") == (i, "v")
        except Exception:  # the count is the point: a failing call in any form
            failed.add(i)
        if shared.stats.errors > errors:
            failed.add(i)
    return len(failed)


def _attempt(settings: dict[str, Any]) -> tuple[str, list[str], int | None]:
    """Configure; return the outcome, the problems, and the failing calls if accepted."""
    stack = CacheStack()
    try:
        stack.configure(settings)
    except ConfigurationError as exc:
        return "refused", exc.problems, None
    except Exception as exc:  # a crash at start-up is an outcome the table must show
        return f"crashed ({type(exc).__name__})", [str(exc)], None
    return "accepted", [], _failing_calls(stack)


def test_redis_options_are_validated_at_start_up(redis_server: RedisServer) -> None:
    rows = []
    faults = []
    for case in BAD_REDIS:
        redis_server.client().flushall()
        outcome, problems, failing = _attempt(_settings(redis_server.url, case.given))
        first = problems[0] if problems else ""
        ok = (
            outcome == "refused"
            and len(problems) == 1
            and first.startswith(case.names + "=")
            and case.fix in first
            and SSL_PASSWORD not in first
        )
        redis_server.client().flushall()
        fixed_outcome, fixed_problems, fixed_failing = _attempt(
            _settings(redis_server.url, case.fixed)
        )
        served = fixed_outcome == "accepted" and fixed_failing == 0
        if not ok or not served:
            faults.append((case.id, outcome, problems, failing, fixed_outcome, fixed_problems))
        rows.append(
            {
                "case": case.id,
                "broke": case.breaks,
                "outcome": outcome if failing is None else f"{outcome}, {failing}/{CALLS} failed",
                "problem": first if len(first) <= 150 else first[:147] + "...",
                "corrected": f"{CALLS - (fixed_failing or 0)}/{CALLS} served"
                if fixed_outcome == "accepted"
                else fixed_outcome,
            }
        )
    refused = sum(1 for r in rows if r["outcome"] == "refused")
    record(
        scenario=103,
        title="Hardening 11.3: Redis options validated at start-up",
        requirement="each Redis option redis-py would refuse, or that breaks stratacache's"
        " contract, is refused by configure() with one problem naming the setting and the"
        " fix; the corrected configuration serves every call of a real redis-server",
        figures={
            "refused at start-up / tried": f"{refused} / {len(BAD_REDIS)}",
            "accepted, then failing calls": sum(
                1 for r in rows if r["outcome"].startswith("accepted")
            ),
            "corrected configurations serving every call": sum(
                1 for r in rows if r["corrected"] == f"{CALLS}/{CALLS} served"
            ),
        },
        table=rows,
    )
    assert faults == []


def _cli(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stratacache", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_infinite_lock_timeout_is_a_configuration_error_in_the_cli(
    redis_server: RedisServer,
) -> None:
    env = clean_env(
        CACHE_TYPE=ATOMIC, CACHE_REDIS_URL=redis_server.url, CACHE_ATOMIC_LOCK_TIMEOUT="inf"
    )
    results = {command: _cli(command, env=env) for command in ("config", "ping", "stats")}
    for command, result in results.items():
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        assert "CACHE_ATOMIC_LOCK_TIMEOUT='inf'" in result.stderr, (command, result.stderr)
        assert "at most 86400 (1 day)" in result.stderr


# -- 11.12: secrets in URLs and options ----------------------------------------------------


def _shown_in_process(stack: CacheStack) -> dict[str, str]:
    layer = stack.shared_cache
    return {
        "repr(backend)": repr(layer.cache),
        "repr(tier)": repr(layer),
        "tier config options": repr(layer.config.options),
        "repr(settings)": repr(stack.settings),
        "settings.as_mapping()": json.dumps(stack.settings.as_mapping(), default=str),
    }


def test_secrets_in_the_url_query_and_options_are_masked_everywhere(
    make_redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server()
    with server.client() as admin:
        admin.config_set("requirepass", PASSWORD)
    url = f"redis://127.0.0.1:{server.port}/0?password={PASSWORD}"
    shown: dict[str, str] = {}

    # The password in the query reaches the server, and is never shown.
    lenient = CacheStack()
    lenient.configure({"CACHE_TYPE": LENIENT, "CACHE_REDIS_URL": url})
    assert lenient.set("k", 1) is True, "the query's password reached the server"
    shown.update({f"{k} (lenient)": v for k, v in _shown_in_process(lenient).items()})
    strict = CacheStack()
    strict.configure({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url})
    env = clean_env(CACHE_TYPE=LENIENT, CACHE_REDIS_URL=url)
    for command in ("config", "info", "stats"):
        result = _cli(command, env=env)
        assert result.returncode == 0, result.stderr
        shown[f"stratacache {command}"] = result.stdout + result.stderr

    # ssl_password in CACHE_OPTIONS, on a TLS URL (nothing connects: no call is made, and no
    # invalidation listener starts; one would retry a TLS handshake with this plain server).
    tls = {
        "CACHE_TYPE": LENIENT,
        "CACHE_REDIS_URL": f"rediss://127.0.0.1:{server.port}/0",
        "CACHE_OPTIONS": {"ssl_password": SSL_PASSWORD, "ssl_cert_reqs": "none"},
        "CACHE_INVALIDATION": "off",
    }
    tls_stack = CacheStack()
    tls_stack.configure(tls)
    shown.update({f"{k} (ssl)": v for k, v in _shown_in_process(tls_stack).items()})
    tls_stack.close()
    tls_env = clean_env(**{k: v if isinstance(v, str) else json.dumps(v) for k, v in tls.items()})
    result = _cli("config", env=tls_env)
    assert result.returncode == 0, result.stderr
    shown["stratacache config (ssl)"] = result.stdout
    with pytest.raises(ConfigurationError) as refused:  # a problem shows no secret either
        CacheStack().configure({**tls, "CACHE_OPTIONS": {"ssl_password": SSL_PASSWORD, "x": 1}})
    shown["ConfigurationError"] = str(refused.value)

    # The outage warning, and the errors of RedisCache.
    server.kill()
    with caplog.at_level(logging.WARNING, logger=rediscache.__name__):
        assert lenient.shared_cache.cache.get("k") is None
    shown["outage warning"] = caplog.text
    assert "failed on" in caplog.text
    with pytest.raises(RedisCacheError) as failure:
        strict.shared_cache.cache.get("k")
    shown["RedisCacheError"] = str(failure.value)

    leaks = sorted(
        where for where, text in shown.items() if PASSWORD in text or SSL_PASSWORD in text
    )
    record(
        scenario=112,
        title="Hardening 11.12: secrets in URL queries and options masked",
        requirement="a password in the URL's query and ssl_password in CACHE_OPTIONS show"
        " nowhere: stratacache config, info and stats, repr(cache), the tier's options,"
        " settings, the outage warning, RedisCacheError and ConfigurationError",
        figures={"places checked": len(shown), "places showing a secret": len(leaks)},
        table=[{"where": w, "secret shown": "YES" if w in leaks else "no"} for w in shown],
    )
    assert leaks == []
    assert "127.0.0.1" in shown["repr(backend) (lenient)"], "masking keeps the address"


# -- 11.17: the smaller items --------------------------------------------------------------

PROBE = """
import json
import stratacache
try:
    settings = stratacache.configure()
except stratacache.ConfigurationError as exc:
    print(json.dumps({"problems": exc.problems}))
else:
    shared = stratacache.cache.shared_cache
    shared.cache.set("k", "v")
    print(json.dumps({
        "signed": shared.cache.signer is not None,
        "options": {k: str(v) for k, v in shared.config.options.items()},
    }))
"""


def _probe(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_the_smaller_items(tmp_path: Path, redis_server: RedisServer) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    rows = []

    # An empty JSON list of keys: an error that says how to turn signing off.
    empty = _probe(
        clean_env(
            CACHE_TYPE="FileSystemCache", CACHE_DIR=str(tmp_path / "c"), CACHE_SECRET_KEY="[]"
        ),
        work,
    )
    problems = empty.get("problems", [])
    secret_ok = (
        len(problems) == 1
        and problems[0].startswith("CACHE_SECRET_KEY=")
        and "unset CACHE_SECRET_KEY" in problems[0]
    )
    rows.append(
        {
            "setting": "CACHE_SECRET_KEY='[]'",
            "outcome": problems[0][:150] if problems else f"accepted, signed={empty['signed']}",
        }
    )

    # CACHE_DIR=~/x is under the home directory, not a directory named "~".
    tilde = _probe(clean_env(CACHE_TYPE="FileSystemCache", CACHE_DIR="~/x", HOME=str(home)), work)
    literal = (work / "~").exists()
    entries = sorted(p.name for p in (home / "x").iterdir()) if (home / "x").is_dir() else []
    tilde_ok = not literal and tilde.get("options", {}).get("cache_dir") == str(home / "x")
    tilde_ok = tilde_ok and bool(entries)
    rows.append(
        {
            "setting": "CACHE_DIR='~/x' (HOME=<tmp>/home)",
            "outcome": f"entries under ~/x: {len(entries)}; literal '~' directory: {literal}",
        }
    )

    # The default timeouts are bounded; the bound itself works against a real Redis.
    bound_problems = []
    for key in ("CACHE_DEFAULT_TIMEOUT", "LOCALCACHE_DEFAULT_TIMEOUT"):
        redis_server.client().flushall()
        outcome, found, failing = _attempt(
            {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_server.url, key: 10**16}
        )
        bound_problems += found
        rows.append(
            {
                "setting": f"{key}=10**16",
                "outcome": found[0][:150] if found else f"{outcome}, {failing}/{CALLS} failed",
            }
        )
    bounded_ok = len(bound_problems) == 2 and all(
        "at most 315360000 (10 years)" in p for p in bound_problems
    )
    redis_server.client().flushall()
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": redis_server.url,
            "CACHE_DEFAULT_TIMEOUT": 315360000,
        }
    )
    assert stack.set("at-the-bound", 1) is True
    ttl = redis_server.client().ttl("at-the-bound")
    rows.append({"setting": "CACHE_DEFAULT_TIMEOUT=315360000", "outcome": f"stored, TTL {ttl} s"})
    record(
        scenario=117,
        title="Hardening 11.17: empty key list, ~ in CACHE_DIR, bounded default timeouts",
        requirement="CACHE_SECRET_KEY='[]' is an error saying to unset it; CACHE_DIR=~/x is"
        " the home directory's x; CACHE_DEFAULT_TIMEOUT and LOCALCACHE_DEFAULT_TIMEOUT over"
        " 10 years are refused naming the bound, which itself works on Redis",
        figures={
            "empty key list refused": "yes" if secret_ok else "NO",
            "~ expanded": "yes" if tilde_ok else "NO",
            "timeouts over the bound refused": f"{len(bound_problems)} / 2",
        },
        table=rows,
    )
    assert secret_ok, empty
    assert tilde_ok, (tilde, literal, entries)
    assert bounded_ok, bound_problems
    assert 315360000 - 60 < ttl <= 315360000
