"""The operator CLI: ``stratacache backends | config | ping | info | stats | clear``.

Also runs as ``python -m stratacache``. Each command reads the configuration as the
application does (environment variables, then a ``.env`` file in the working directory) and
takes ``--json`` for scripts. Exit codes: 0 success, 1 an operation failed (a layer did not
answer, a clear failed, the confirmation was declined), 2 an invalid configuration or
invocation.

What a command reports about a store comes from the backend (:meth:`Backend.ping`,
:meth:`Backend.describe`, :meth:`Backend.store_stats`); the CLI has no branch per backend.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import sys
import time
from typing import Any, NoReturn

import click

from stratacache.backend import Backend
from stratacache.errors import CacheError, ConfigurationError, PluginError
from stratacache.registry import installed_backends
from stratacache.stack import CacheStack
from stratacache.tier import Tier

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "main"]

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_FAILED = 1
"""An operation failed: a layer did not answer, a clear failed, or confirmation was declined."""
EXIT_CONFIG = 2
"""The configuration is invalid, or the command line is (click's usage errors)."""

EPILOG = """\b
Exit codes:
  0  success
  1  an operation failed: a layer did not answer, a clear failed,
     or the confirmation was declined
  2  invalid configuration (reported key by key) or invalid usage

Settings are read as the application reads them: CACHE_* and LOCALCACHE_*
environment variables, then a .env file in the working directory.
Every command takes --json for scripts."""

_IDENTIFIER = r"[A-Za-z_]\w*"
_FUNCTION = re.compile(
    rf"(?P<module>{_IDENTIFIER}(?:\.{_IDENTIFIER})*)"
    rf":(?P<qualname>(?:(?:{_IDENTIFIER}|<locals>)\.)*{_IDENTIFIER})"
)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    return str(value)


def _echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=_json_default))


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"stratacache: {message}", err=True)
    sys.exit(code)


def _stack() -> CacheStack:
    """Build the layers from the environment, as the application would; exit 2 if invalid."""
    stack = CacheStack()
    try:
        stack.configure()
    except (ConfigurationError, PluginError) as exc:
        _fail(str(exc), EXIT_CONFIG)
    except OSError as exc:  # a directory that cannot be created, say
        _fail(f"cannot build the layers: {exc}", EXIT_FAILED)
    return stack


def _layers(stack: CacheStack) -> list[Tier]:
    state = stack._layers()
    return list(state.every)


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _key_values(values: dict[str, Any], indent: str = "") -> list[str]:
    """Lines of ``key  value``, aligned; a nested dict is listed below its key."""
    width = max((len(k) for k, v in values.items() if not isinstance(v, dict)), default=0)
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines += _key_values(value, indent + "  ") if value else [f"{indent}  (none)"]
        else:
            shown = "-" if value is None else str(value)
            lines.append(f"{indent}{key.ljust(width)}  {shown}")
    return lines


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(package_name="stratacache")
def main() -> None:
    """Inspect and operate the stratacache cache of this environment."""


@main.command(short_help="List the installed backends.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def backends(as_json: bool) -> None:
    """List the installed backends: name, class, distribution and version.

    Nothing is imported: the list comes from the 'stratacache.backends' entry points.
    """
    infos = installed_backends()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(i) for i in infos], indent=2))
        return
    rows = [[i.name, i.target, i.distribution, i.version] for i in infos]
    click.echo(_table(["NAME", "CLASS", "DISTRIBUTION", "VERSION"], rows))


@main.command(short_help="Show the effective settings and where each came from.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def config(as_json: bool) -> None:
    """Show the effective settings, with secrets masked and where each value came from.

    Settings are read as the application would read them: environment variables, then a
    .env file in the working directory, then defaults. An invalid configuration is
    reported key by key, with exit code 2.
    """
    from stratacache.reference import effective_settings

    try:
        # Configuring runs the assembly's checks too, so every problem is listed at once.
        effective = effective_settings(CacheStack().configure())
    except ConfigurationError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    if as_json:
        payload = {k: {"value": v, "source": s} for k, (v, s) in effective.items()}
        click.echo(json.dumps(payload, indent=2, default=_json_default))
        return
    rows = [[k, json.dumps(v, default=_json_default), s] for k, (v, s) in effective.items()]
    click.echo(_table(["KEY", "VALUE", "SOURCE"], rows))


def _ping(backend: Backend, count: int) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": type(backend).__name__}
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            backend.ping()
            times.append((time.perf_counter() - start) * 1000)
        nodes = backend.ping_nodes()  # a store of several servers: each, with its role
    except Exception as exc:  # a health check reports whatever stops the layer answering
        return {**result, "ok": False, "error": _error(exc)}
    result.update(ok=True, latency_ms=round(statistics.median(times), 3))
    if nodes:
        result.update(ok=all(node["ok"] for node in nodes), nodes=nodes)
    return result


@main.command(short_help="Check that every layer answers, with its latency.")
@click.option(
    "--count",
    default=3,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Round trips per layer; the median latency is shown.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def ping(count: int, as_json: bool) -> None:
    """Check that every configured layer answers, and how fast.

    Each layer's backend makes COUNT round trips to its store (Redis: PING; a directory:
    a file lookup; in-process layers: a lookup in memory) and the median is shown in
    milliseconds. Exit code 1 if any layer fails, with its error.
    """
    results = {layer.name: _ping(layer.cache, count) for layer in _layers(_stack())}
    ok = all(result["ok"] for result in results.values())
    if as_json:
        _echo_json({"ok": ok, "layers": results})
    else:
        rows = []
        for name, result in results.items():
            status = "ok" if result["ok"] else "FAILED"
            latency = f"{result['latency_ms']:.3f} ms" if "latency_ms" in result else None
            rows.append([name, result["backend"], status, latency or result["error"]])
            for node in result.get("nodes", []):  # a Cluster's nodes, each with its role
                shown = f"{node['latency_ms']:.3f} ms" if node["ok"] else node["error"]
                label = f"  {node['node']} ({node['role']})"
                rows.append([label, "", "ok" if node["ok"] else "FAILED", shown])
        click.echo(_table(["LAYER", "BACKEND", "STATUS", "LATENCY"], rows))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@main.command(short_help="Describe each layer's store: where it is, how big.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def info(as_json: bool) -> None:
    r"""Describe each layer's store: backend, where it lives, how big it is.

    \b
    Redis: server version, used memory, maxmemory and its policy, the keys of the
    database, and the entries, tracked functions and locks under CACHE_KEY_PREFIX
    (counted with SCAN, never KEYS). FileSystemCache: the directory, its entries and
    their size. In-process layers are this command's own, so they are empty.

    Exit code 1 if a layer cannot answer.
    """
    described: dict[str, dict[str, Any]] = {}
    ok = True
    for layer in _layers(_stack()):
        try:
            described[layer.name] = layer.cache.describe()
        except Exception as exc:  # reported, with exit code 1
            ok = False
            described[layer.name] = {"backend": type(layer.cache).__name__, "error": _error(exc)}
    if as_json:
        _echo_json({"ok": ok, "layers": described})
    else:
        blocks = []
        for name, values in described.items():
            rest = {k: v for k, v in values.items() if k != "backend"}
            blocks.append("\n".join([f"{name}: {values['backend']}", *_key_values(rest, "  ")]))
        click.echo("\n\n".join(blocks))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@main.command(short_help="Show the shared layer's own statistics (Redis: hits, entries).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def stats(as_json: bool) -> None:
    r"""Show the shared layer's statistics, as its store keeps them for every process.

    \b
    Redis: the server's keyspace hits and misses (and their ratio), evicted and expired
    keys (server-wide, since its start or CONFIG RESETSTAT), the entries under
    CACHE_KEY_PREFIX, and the live entries of each decorated function, read from the
    key-tracking sets. FileSystemCache: its entries and their size.

    This command runs in a process of its own: the in-process counters of your
    application (hits, misses, writes, errors and compute time per layer and per
    function) are not here. Read them with stratacache.cache.stats() inside the
    application, or scrape them with the Prometheus plugin (CACHE_PROMETHEUS=true).

    Exit code 1 if the shared layer cannot answer.
    """
    backend = _stack().shared_cache.cache
    try:
        found = backend.store_stats()
    except Exception as exc:  # reported, with exit code 1
        _fail(f"the shared layer ({backend!r}) cannot answer: {_error(exc)}", EXIT_FAILED)
    if as_json:
        _echo_json({"layer": "shared", "backend": type(backend).__name__, "stats": found})
        return
    click.echo(f"shared layer: {backend!r}")
    click.echo("\n".join(_key_values(found)) if found else "(this backend keeps no statistics)")
    click.echo(
        "\nIn-process counters (hits, misses, compute time per function) live in each"
        " process: stratacache.cache.stats(), or the Prometheus plugin.",
        err=True,
    )


def _group(value: str) -> str:
    """Turn ``module:qualname`` into the decorator's group name, ``module.qualname``."""
    match = _FUNCTION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(
            f"{value!r} is not MODULE:QUALNAME, e.g. myapp.rates:exchange_rates or"
            " myapp.models:User.load (the function's __module__, a colon, its __qualname__)",
            param_hint="'--function'",
        )
    return f"{match['module']}.{match['qualname']}"


@main.command(short_help="Delete a function's entries, or all, from the shared layer.")
@click.option(
    "--function",
    "function",
    metavar="MODULE:QUALNAME",
    help="Delete one decorated function's entries, e.g. myapp.rates:exchange_rates.",
)
@click.option("--all", "clear_all", is_flag=True, help="Delete every entry the shared layer owns.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def clear(function: str | None, clear_all: bool, yes: bool, as_json: bool) -> None:
    """Delete entries from the shared layer: one function's (--function) or all (--all).

    --function deletes exactly the entries the function's key tracking recorded, without
    scanning the store. --all deletes what the backend owns: for Redis, only the keys under
    CACHE_KEY_PREFIX, up to its separator (':' is added to a prefix ending with a letter or
    a digit, so 'myapp' leaves 'myapp2:...' alone), found with SCAN, never FLUSHDB; an empty
    prefix means the whole database, and the prompt says so; for FileSystemCache, the
    entries of CACHE_DIR.

    Asks for confirmation unless --yes. Copies in the local layers of running processes
    expire within LOCALCACHE_DEFAULT_TIMEOUT.
    """
    if bool(function) == clear_all:
        raise click.UsageError("give exactly one of --function MODULE:QUALNAME and --all")
    group = _group(function) if function else None
    backend = _stack().shared_cache.cache
    if group is not None:
        question = f"Delete every entry of {group} from the shared layer ({backend!r})?"
    else:
        try:
            described = backend.describe()
        except Exception as exc:  # reported, with exit code 1
            _fail(f"the shared layer ({backend!r}) cannot answer: {_error(exc)}", EXIT_FAILED)
        entries = described.get("entries")
        counted = f" ({_entries(entries)})" if isinstance(entries, int) else ""
        question = f"Delete {described.get('clears', 'every entry of the shared layer')}{counted}?"
    if not yes:
        click.confirm(question, abort=True, err=True)
    errors = backend.stats.errors  # a backend that degrades silently still counts its failures
    try:
        deleted = backend.clear_tracked(group) if group is not None else None
        cleared = group is not None or bool(backend.clear())
    except (CacheError, OSError) as exc:
        _fail(f"clearing the shared layer failed: {_error(exc)}", EXIT_FAILED)
    if not cleared or backend.stats.errors > errors:
        _fail(f"clearing the shared layer ({backend!r}) failed; see the log", EXIT_FAILED)
    if as_json:
        _echo_json({"function": group, "deleted": deleted} if group else {"all": True})
    elif group is not None:
        click.echo(f"Deleted {_entries(deleted or 0)} of {group} from the shared layer.")
        if not deleted:
            click.echo(
                f"No entry of {group} is tracked: `stratacache stats` lists the functions"
                " that have entries.",
                err=True,
            )
    else:
        click.echo(f"Cleared the shared layer ({backend!r}).")
