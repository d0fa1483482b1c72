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
import importlib
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
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
_JSON = "stratacache.json"
_APP = "stratacache.app"


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


def _as_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(_JSON))


def _fail(message: str, code: int, **details: Any) -> NoReturn:
    """Report a failure (one JSON object on stdout with ``--json``) and exit with ``code``."""
    if _as_json():
        _echo_json({"ok": False, "exit_code": code, "error": message, **details})
    else:
        click.echo(f"stratacache: {message}", err=True)
    sys.exit(code)


def _colour() -> bool:
    """Whether to colour the status words: stdout is a terminal and NO_COLOR is not set."""
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def _status(ok: bool) -> str:
    word = "ok" if ok else "FAILED"
    if not _colour():
        return word
    return click.style(word, fg="green") if ok else click.style(word, fg="red", bold=True)


class _Group(click.Group):
    """The command group: with ``--json`` anywhere, a usage error is a JSON object too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_JSON] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if not ctx.meta.get(_JSON):
                raise
            _echo_json({"ok": False, "exit_code": exc.exit_code, "error": exc.format_message()})
            ctx.exit(exc.exit_code)


def _resolve(found: Any, spec: str) -> CacheStack:
    """The stack behind what ``--app`` named: a stack, a Flask app, a Cache, or a factory."""
    from stratacache.stack import CacheStack

    for _ in range(2):  # a factory is called once
        if isinstance(found, CacheStack):
            return found
        extensions = getattr(found, "extensions", None)  # a Flask application
        if isinstance(extensions, dict) and "stratacache" in extensions:
            found = extensions["stratacache"]
        if isinstance(getattr(found, "stack", None), CacheStack):  # stratacache.flask.Cache
            return found.stack  # type: ignore[no-any-return]
        if callable(found) and extensions is None:
            try:
                found = found()
            except TypeError as exc:  # a factory that wants arguments
                raise click.BadParameter(
                    f"calling {spec!r} failed: {exc}", param_hint="'--app'"
                ) from exc
            continue
        break
    raise click.BadParameter(
        f"{spec!r} is {type(found).__name__}, not a CacheStack, a Flask application with"
        " stratacache.flask's Cache, or a callable returning one of them",
        param_hint="'--app'",
    )


def _app_stack(spec: str) -> CacheStack:
    """Import the application ``module[:attr]`` (the working directory first on the path)."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {exc}", param_hint="'--app'"
        ) from exc
    if not attr:  # importing the module configured the process-wide stack
        import stratacache

        return stratacache.cache
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attr!r}", param_hint="'--app'"
            ) from None
    return _resolve(found, spec)


def _stack() -> CacheStack:
    """The stack to operate: the --app's, or built from the environment; exit 2 if invalid."""
    ctx = click.get_current_context()
    spec = ctx.find_root().meta.get(_APP)
    try:
        if spec:
            stack = _app_stack(spec)
            stack._layers()  # configured by the application, or else from the environment
        else:
            stack = CacheStack()
            stack.configure()
    except (ConfigurationError, PluginError) as exc:
        problems = getattr(exc, "problems", [str(exc)])
        _fail(str(exc), EXIT_CONFIG, problems=problems)
    except OSError as exc:  # a directory that cannot be created, say
        _fail(f"cannot build the layers: {exc}", EXIT_FAILED)
    return stack


def _split(stack: CacheStack) -> tuple[list[Tier], list[Tier]]:
    """The tiers shared between processes (the deepest always), and the per-process ones."""
    state = stack._layers()
    shared = [t for t in state.every if not t.cache.in_process or t is state.shared]
    return shared, [t for t in state.every if t not in shared]


def _local_note(local: Sequence[Tier]) -> str:
    names = ", ".join(f"{t.name} ({type(t.cache).__name__})" for t in local)
    return (
        f"Local tiers are per process, each application process has its own: {names}."
        if local
        else ""
    )


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
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
    ctx.meta[_APP] = app


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

    # Configuring runs the assembly's checks too, so every problem is listed at once.
    settings = _stack().settings
    try:
        effective = effective_settings(settings)
    except ConfigurationError as exc:
        _fail(str(exc), EXIT_CONFIG, problems=exc.problems)
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
    """Check that every shared layer answers, and how fast.

    Each layer's backend makes COUNT round trips to its store (Redis: PING; a directory:
    a file lookup) and the median is shown in milliseconds. Exit code 1 if any layer
    fails, with its error. Local (in-process) tiers belong to each application process:
    this command's own would say nothing, so they are named in a note, not pinged.
    """
    shared, local = _split(_stack())
    results = {layer.name: _ping(layer.cache, count) for layer in shared}
    ok = all(result["ok"] for result in results.values())
    if as_json:
        per_process = {t.name: type(t.cache).__name__ for t in local}
        _echo_json({"ok": ok, "layers": results, "local_tiers_per_process": per_process})
    else:
        rows = []
        for name, result in results.items():
            latency = f"{result['latency_ms']:.3f} ms" if "latency_ms" in result else None
            rows.append(
                [name, result["backend"], _status(result["ok"]), latency or result["error"]]
            )
            for node in result.get("nodes", []):  # a Cluster's nodes, each with its role
                shown = f"{node['latency_ms']:.3f} ms" if node["ok"] else node["error"]
                label = f"  {node['node']} ({node['role']})"
                rows.append([label, "", _status(node["ok"]), shown])
        click.echo(_table(["LAYER", "BACKEND", "STATUS", "LATENCY"], rows))
        if local:
            click.echo(_local_note(local))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@main.command(short_help="Describe each layer's store: where it is, how big.")
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
    shared, local = _split(_stack())
    for layer in shared:
        try:
            described[layer.name] = layer.cache.describe()
        except Exception as exc:  # reported, with exit code 1
            ok = False
            described[layer.name] = {"backend": type(layer.cache).__name__, "error": _error(exc)}
    if as_json:
        per_process = {t.name: type(t.cache).__name__ for t in local}
        _echo_json({"ok": ok, "layers": described, "local_tiers_per_process": per_process})
    else:
        blocks = []
        for name, values in described.items():
            rest = {k: v for k, v in values.items() if k != "backend"}
            blocks.append("\n".join([f"{name}: {values['backend']}", *_key_values(rest, "  ")]))
        if local:
            blocks.append(_local_note(local))
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
    backend = _stack().shared_cache.cache
    if watch:
        _watch(backend, interval, count, as_json)
        return
    found = _store_stats(backend)
    if as_json:
        _echo_json(
            {"ok": True, "layer": "shared", "backend": type(backend).__name__, "stats": found}
        )
        return
    click.echo(f"shared layer: {backend!r}")
    click.echo("\n".join(_key_values(found)) if found else "(this backend keeps no statistics)")
    click.echo(
        "\nIn-process counters (hits, misses, compute time per function) live in each"
        " process: stratacache.cache.stats(), or the Prometheus plugin.",
        err=True,
    )


def _store_stats(backend: Backend) -> dict[str, Any]:
    try:
        return backend.store_stats()
    except Exception as exc:  # reported, with exit code 1
        _fail(f"the shared layer ({backend!r}) cannot answer: {_error(exc)}", EXIT_FAILED)


_WATCHED = ("keyspace_hits", "keyspace_misses", "hit_ratio", "entries")
_WATCH_HEADERS = ["TIME", "HITS", "MISSES", "HIT_RATIO", "ENTRIES", "OPS/S"]


def _watch(backend: Backend, interval: float, count: int | None, as_json: bool) -> None:
    """Print the shared tier's counters every ``interval`` seconds until Ctrl-C or ``count``."""
    widths = [8, 12, 12, 9, 10, 10]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))

    if not as_json:
        click.echo(f"shared layer: {backend!r}")
        click.echo(line(_WATCH_HEADERS))
    before: tuple[float, int] | None = None
    printed = 0
    try:
        while True:
            found = _store_stats(backend)
            now = time.monotonic()
            lookups = int(found.get("keyspace_hits", 0)) + int(found.get("keyspace_misses", 0))
            rate = None
            if before is not None and now > before[0]:
                rate = round((lookups - before[1]) / (now - before[0]), 1)
            before = (now, lookups)
            values = {key: found.get(key) for key in _WATCHED}
            if as_json:
                tick = {"time": time.strftime("%H:%M:%S"), **values, "ops_per_sec": rate}
                click.echo(json.dumps(tick, default=_json_default))  # a JSON line per tick
            else:
                cells = [time.strftime("%H:%M:%S")]
                cells += ["-" if values[k] is None else str(values[k]) for k in _WATCHED]
                click.echo(line([*cells, "-" if rate is None else f"{rate:.1f}"]))
            printed += 1
            if count is not None and printed >= count:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


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
    backend = _stack().shared_cache.cache
    entries: Any = None
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
        _confirm(question)
    errors = backend.stats.errors  # a backend that degrades silently still counts its failures
    try:
        deleted = backend.clear_tracked(group) if group is not None else None
        cleared = group is not None or bool(backend.clear())
    except (CacheError, OSError) as exc:
        _fail(f"clearing the shared layer failed: {_error(exc)}", EXIT_FAILED)
    if not cleared or backend.stats.errors > errors:
        _fail(f"clearing the shared layer ({backend!r}) failed; see the log", EXIT_FAILED)
    _report_cleared(backend, group, deleted, entries, as_json)


def _confirm(question: str) -> None:
    try:
        confirmed = click.confirm(question, err=True)
    except click.Abort:  # no terminal to answer, or Ctrl-C
        confirmed = False
    if not confirmed:
        _fail("not confirmed (Aborted): nothing deleted", EXIT_FAILED)


def _report_cleared(
    backend: Backend, group: str | None, deleted: int | None, entries: Any, as_json: bool
) -> None:
    counted = entries if isinstance(entries, int) else None  # counted with SCAN just before
    if as_json:
        if group is not None:
            _echo_json({"ok": True, "function": group, "deleted": deleted})
        else:
            _echo_json({"ok": True, "all": True, "deleted": counted})
    elif group is not None:
        click.echo(f"Deleted {_entries(deleted or 0)} of {group} from the shared layer.")
        if not deleted:
            click.echo(
                f"No entry of {group} is tracked: `stratacache stats` lists the functions"
                " that have entries.",
                err=True,
            )
    else:
        gone = _entries(counted) if counted is not None else "every entry"
        click.echo(f"Cleared the shared layer ({backend!r}): {gone} deleted.")
