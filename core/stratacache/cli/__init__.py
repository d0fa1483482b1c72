"""The operator CLI: ``stratacache backends | config | ping | info | stats | clear``.

Also runs as ``python -m stratacache``. Each command reads the configuration as the
application does (environment variables, then a ``.env`` file in the working directory), or
uses the stack an application configured in code (``--app module:attr``), and takes
``--json`` for scripts: with it, every outcome, failures included, is one JSON object on
stdout. Exit codes: 0 success, 1 an operation failed (a layer did not answer, a clear failed,
the confirmation was declined), 2 an invalid configuration or invocation.

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
from typing import Any

import click

from stratacache.backend import Backend
from stratacache.cli._app import APP_KEY, local_note, operated_stack, split_tiers
from stratacache.cli._output import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    CliGroup,
    echo_json,
    entries_text,
    error_text,
    fail,
    json_default,
    key_values,
    status,
    table,
)
from stratacache.cli._watch import store_stats, watch_stats
from stratacache.errors import CacheError, ConfigurationError
from stratacache.registry import installed_backends

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "main"]

EPILOG = """\b
Exit codes:
  0  success
  1  an operation failed: a layer did not answer, a clear failed,
     or the confirmation was declined
  2  invalid configuration (reported key by key) or invalid usage

Settings are read as the application reads them: CACHE_* and LOCALCACHE_*
environment variables, then a .env file in the working directory; or give
--app module:attr to use the stack an application configures in code.
Every command takes --json for scripts: every outcome, failures included,
is then one JSON object on stdout.
Local (in-process) tiers belong to each process: ping and info show the
shared tiers."""

_IDENTIFIER = r"[A-Za-z_]\w*"
_FUNCTION = re.compile(
    rf"(?P<module>{_IDENTIFIER}(?:\.{_IDENTIFIER})*)"
    rf":(?P<qualname>(?:(?:{_IDENTIFIER}|<locals>)\.)*{_IDENTIFIER})"
)
_GROUP = re.compile(rf"(?:(?:{_IDENTIFIER}|<locals>)\.)+{_IDENTIFIER}")


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(package_name="stratacache")
@click.option(
    "--app",
    "app",
    metavar="MODULE[:ATTR]",
    envvar="STRATACACHE_APP",
    help="Import this application (the working directory on sys.path) and use its stack:"
    " ATTR is a CacheStack, a Flask app with stratacache.flask's Cache, or a callable"
    " returning one; without ATTR, stratacache.cache as importing MODULE configured it.",
)
@click.pass_context
def main(ctx: click.Context, app: str | None) -> None:
    """Inspect and operate the stratacache cache of this environment."""
    ctx.meta[APP_KEY] = app


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
    click.echo(table(["NAME", "CLASS", "DISTRIBUTION", "VERSION"], rows))


@main.command(short_help="Show the effective settings and where each came from.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def config(as_json: bool) -> None:
    """Show the effective settings, with secrets masked and where each value came from.

    Settings are read as the application would read them: environment variables, then a
    .env file in the working directory, then defaults. An invalid configuration is
    reported key by key, with exit code 2.
    """
    from stratacache.reference import effective_settings

    # Configuring runs the assembly's checks too, so every problem is listed at once.
    settings = operated_stack().settings
    try:
        effective = effective_settings(settings)
    except ConfigurationError as exc:
        fail(str(exc), EXIT_CONFIG, problems=exc.problems)
    if as_json:
        payload = {k: {"value": v, "source": s} for k, (v, s) in effective.items()}
        click.echo(json.dumps(payload, indent=2, default=json_default))
        return
    rows = [[k, json.dumps(v, default=json_default), s] for k, (v, s) in effective.items()]
    click.echo(table(["KEY", "VALUE", "SOURCE"], rows))


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
        return {**result, "ok": False, "error": error_text(exc)}
    result.update(ok=True, latency_ms=round(statistics.median(times), 3))
    if nodes:
        result.update(ok=all(node["ok"] for node in nodes), nodes=nodes)
    return result


@main.command(short_help="Check that every shared layer answers, with its latency.")
@click.option(
    "--count",
    default=3,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Round trips per layer; the median latency is shown.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def ping(count: int, as_json: bool) -> None:
    """Check that every shared layer answers, and how fast.

    Each layer's backend makes COUNT round trips to its store (Redis: PING; a directory:
    a file lookup) and the median is shown in milliseconds. Exit code 1 if any layer
    fails, with its error. Local (in-process) tiers belong to each application process:
    this command's own would say nothing, so they are named in a note, not pinged.
    """
    shared, local = split_tiers(operated_stack())
    results = {layer.name: _ping(layer.cache, count) for layer in shared}
    ok = all(result["ok"] for result in results.values())
    if as_json:
        per_process = {t.name: type(t.cache).__name__ for t in local}
        echo_json({"ok": ok, "layers": results, "local_tiers_per_process": per_process})
    else:
        rows = []
        for name, result in results.items():
            latency = f"{result['latency_ms']:.3f} ms" if "latency_ms" in result else None
            rows.append([name, result["backend"], status(result["ok"]), latency or result["error"]])
            for node in result.get("nodes", []):  # a Cluster's nodes, each with its role
                shown = f"{node['latency_ms']:.3f} ms" if node["ok"] else node["error"]
                label = f"  {node['node']} ({node['role']})"
                rows.append([label, "", status(node["ok"]), shown])
        click.echo(table(["LAYER", "BACKEND", "STATUS", "LATENCY"], rows))
        if local:
            click.echo(local_note(local))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@main.command(short_help="Describe each shared layer's store: where it is, how big.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def info(as_json: bool) -> None:
    r"""Describe each layer's store: backend, where it lives, how big it is.

    \b
    Redis: server version, used memory, maxmemory and its policy, the keys of the
    database, and the entries, tracked functions and locks under CACHE_KEY_PREFIX
    (counted with SCAN, never KEYS). FileSystemCache: the directory, its entries and
    their size. Local (in-process) tiers belong to each application process: they are
    named in a note, not described.

    Exit code 1 if a layer cannot answer.
    """
    described: dict[str, dict[str, Any]] = {}
    ok = True
    shared, local = split_tiers(operated_stack())
    for layer in shared:
        try:
            described[layer.name] = layer.cache.describe()
        except Exception as exc:  # reported, with exit code 1
            ok = False
            described[layer.name] = {
                "backend": type(layer.cache).__name__,
                "error": error_text(exc),
            }
    if as_json:
        per_process = {t.name: type(t.cache).__name__ for t in local}
        echo_json({"ok": ok, "layers": described, "local_tiers_per_process": per_process})
    else:
        blocks = []
        for name, values in described.items():
            rest = {k: v for k, v in values.items() if k != "backend"}
            blocks.append("\n".join([f"{name}: {values['backend']}", *key_values(rest, "  ")]))
        if local:
            blocks.append(local_note(local))
        click.echo("\n\n".join(blocks))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@main.command(short_help="Show the shared layer's own statistics (Redis: hits, entries).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
@click.option(
    "--watch", is_flag=True, help="A line per interval, like redis-cli --stat; Ctrl-C stops."
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 3600),
    help="Seconds between two --watch lines.",
)
@click.option(
    "--count",
    type=click.IntRange(1),
    help="Stop --watch after COUNT lines (default: until Ctrl-C).",
)
def stats(as_json: bool, watch: bool, interval: float, count: int | None) -> None:
    r"""Show the shared layer's statistics, as its store keeps them for every process.

    \b
    Redis: the server's keyspace hits and misses (and their ratio), evicted and expired
    keys (server-wide, since its start or CONFIG RESETSTAT), the entries under
    CACHE_KEY_PREFIX, and the live entries of each decorated function, read from the
    key-tracking sets. FileSystemCache: its entries and their size.

    \b
    --watch prints a line every --interval seconds: the hits, misses, hit ratio and
    entries, and OPS/S, the lookups (hits + misses) per second since the line before.
    With --json, each line is a JSON object (JSON Lines).

    This command runs in a process of its own: the in-process counters of your
    application (hits, misses, writes, errors and compute time per layer and per
    function) are not here. Read them with stratacache.cache.stats() inside the
    application, or scrape them with the Prometheus plugin (CACHE_PROMETHEUS=true).

    Exit code 1 if the shared layer cannot answer.
    """
    if count is not None and not watch:
        raise click.UsageError("--count counts the lines of --watch; add --watch")
    backend = operated_stack().shared_cache.cache
    if watch:
        watch_stats(backend, interval, count, as_json)
        return
    found = store_stats(backend)
    if as_json:
        echo_json(
            {"ok": True, "layer": "shared", "backend": type(backend).__name__, "stats": found}
        )
        return
    click.echo(f"shared layer: {backend!r}")
    click.echo("\n".join(key_values(found)) if found else "(this backend keeps no statistics)")
    click.echo(
        "\nIn-process counters (hits, misses, compute time per function) live in each"
        " process: stratacache.cache.stats(), or the Prometheus plugin.",
        err=True,
    )


def _group(value: str) -> str:
    """Turn ``module:qualname`` (or ``module.qualname``, as ``stats`` shows it) into the group."""
    value = value.strip()
    match = _FUNCTION.fullmatch(value)
    if match is not None:
        return f"{match['module']}.{match['qualname']}"
    if _GROUP.fullmatch(value) is not None:  # the name `stratacache stats` lists
        return value
    raise click.BadParameter(
        f"{value!r} is not MODULE:QUALNAME (or MODULE.QUALNAME, as `stratacache stats` lists"
        " it), e.g. myapp.rates:exchange_rates or myapp.models:User.load (the function's"
        " __module__, a colon, its __qualname__)",
        param_hint="'--function'",
    )


@main.command(short_help="Delete a function's entries, or all, from the shared layer.")
@click.option(
    "--function",
    "function",
    metavar="MODULE:QUALNAME",
    help="Delete one decorated function's entries, e.g. myapp.rates:exchange_rates"
    " (or myapp.rates.exchange_rates, as `stratacache stats` lists it).",
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
    backend = operated_stack().shared_cache.cache
    entries: Any = None
    if group is not None:
        question = f"Delete every entry of {group} from the shared layer ({backend!r})?"
    else:
        try:
            described = backend.describe()
        except Exception as exc:  # reported, with exit code 1
            fail(f"the shared layer ({backend!r}) cannot answer: {error_text(exc)}", EXIT_FAILED)
        entries = described.get("entries")
        counted = f" ({entries_text(entries)})" if isinstance(entries, int) else ""
        question = f"Delete {described.get('clears', 'every entry of the shared layer')}{counted}?"
    if not yes:
        _confirm(question)
    errors = backend.stats.errors  # a backend that degrades silently still counts its failures
    try:
        deleted = backend.clear_tracked(group) if group is not None else None
        cleared = group is not None or bool(backend.clear())
    except (CacheError, OSError) as exc:
        fail(f"clearing the shared layer failed: {error_text(exc)}", EXIT_FAILED)
    if not cleared or backend.stats.errors > errors:
        fail(f"clearing the shared layer ({backend!r}) failed; see the log", EXIT_FAILED)
    _report_cleared(backend, group, deleted, entries, as_json)


def _confirm(question: str) -> None:
    try:
        confirmed = click.confirm(question, err=True)
    except click.Abort:  # no terminal to answer, or Ctrl-C
        confirmed = False
    if not confirmed:
        fail("not confirmed (Aborted): nothing deleted", EXIT_FAILED)


def _report_cleared(
    backend: Backend, group: str | None, deleted: int | None, entries: Any, as_json: bool
) -> None:
    counted = entries if isinstance(entries, int) else None  # counted with SCAN just before
    if as_json:
        if group is not None:
            echo_json({"ok": True, "function": group, "deleted": deleted})
        else:
            echo_json({"ok": True, "all": True, "deleted": counted})
    elif group is not None:
        click.echo(f"Deleted {entries_text(deleted or 0)} of {group} from the shared layer.")
        if not deleted:
            click.echo(
                f"No entry of {group} is tracked: `stratacache stats` lists the functions"
                " that have entries.",
                err=True,
            )
    else:
        gone = entries_text(counted) if counted is not None else "every entry"
        click.echo(f"Cleared the shared layer ({backend!r}): {gone} deleted.")
