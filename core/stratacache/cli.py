"""The operator CLI: ``stratacache backends`` and ``stratacache config``.

Also runs as ``python -m stratacache``. Exit codes: 0 success, 2 an invalid configuration
or invocation. Every command takes ``--json`` for scripts.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from stratacache.errors import ConfigurationError
from stratacache.registry import installed_backends
from stratacache.settings import CacheSettings

__all__ = ["main"]

EXIT_CONFIG = 2


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    return str(value)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stratacache")
def main() -> None:
    """Inspect the stratacache installation and configuration of this environment."""


@main.command()
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


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def config(as_json: bool) -> None:
    """Show the effective settings, with secrets masked and where each value came from.

    Settings are read as the application would read them: environment variables, then a
    .env file in the working directory, then defaults. An invalid configuration is
    reported key by key, with exit code 2.
    """
    try:
        settings = CacheSettings()
    except ConfigurationError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    values = settings.as_mapping()
    sources = settings.sources()
    if as_json:
        payload = {k: {"value": v, "source": sources[k]} for k, v in values.items()}
        click.echo(json.dumps(payload, indent=2, default=_json_default))
        return
    rows = [[k, json.dumps(v, default=_json_default), sources[k]] for k, v in values.items()]
    click.echo(_table(["KEY", "VALUE", "SOURCE"], rows))
