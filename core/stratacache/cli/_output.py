"""What the CLI prints: tables, JSON (on every outcome with ``--json``), colour, exit codes."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import click

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "JSON_FLAG",
    "CliGroup",
    "echo_json",
    "entries_text",
    "error_text",
    "fail",
    "json_default",
    "key_values",
    "status",
    "table",
]

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_FAILED = 1
"""An operation failed: a layer did not answer, a clear failed, or confirmation was declined."""
EXIT_CONFIG = 2
"""The configuration is invalid, or the command line is (click's usage errors)."""

JSON_FLAG = "stratacache.json"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def json_default(value: Any) -> Any:
    return str(value)


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=json_default))


def as_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(JSON_FLAG))


def fail(message: str, code: int, **details: Any) -> NoReturn:
    """Report a failure (one JSON object on stdout with ``--json``) and exit with ``code``."""
    if as_json():
        echo_json({"ok": False, "exit_code": code, "error": message, **details})
    else:
        click.echo(f"stratacache: {message}", err=True)
    sys.exit(code)


def colour() -> bool:
    """Whether to colour the status words: stdout is a terminal and NO_COLOR is not set."""
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def status(ok: bool) -> str:
    word = "ok" if ok else "FAILED"
    if not colour():
        return word
    return click.style(word, fg="green") if ok else click.style(word, fg="red", bold=True)


class CliGroup(click.Group):
    """The command group: with ``--json`` anywhere, a usage error is a JSON object too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[JSON_FLAG] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if not ctx.meta.get(JSON_FLAG):
                raise
            echo_json({"ok": False, "exit_code": exc.exit_code, "error": exc.format_message()})
            ctx.exit(exc.exit_code)


def entries_text(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def key_values(values: dict[str, Any], indent: str = "") -> list[str]:
    """Lines of ``key  value``, aligned; a nested dict is listed below its key."""
    width = max((len(k) for k, v in values.items() if not isinstance(v, dict)), default=0)
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines += key_values(value, indent + "  ") if value else [f"{indent}  (none)"]
        else:
            shown = "-" if value is None else str(value)
            lines.append(f"{indent}{key.ljust(width)}  {shown}")
    return lines
