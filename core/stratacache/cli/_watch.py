"""``stratacache stats --watch``: a line of the shared tier's counters per interval."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from stratacache.cli._output import EXIT_FAILED, error_text, fail, json_default

if TYPE_CHECKING:
    from stratacache.backend import Backend

__all__ = ["store_stats", "watch_stats"]


def store_stats(backend: Backend) -> dict[str, Any]:
    try:
        return backend.store_stats()
    except Exception as exc:  # reported, with exit code 1
        fail(f"the shared layer ({backend!r}) cannot answer: {error_text(exc)}", EXIT_FAILED)


_WATCHED = ("keyspace_hits", "keyspace_misses", "hit_ratio", "entries")
_WATCH_HEADERS = ["TIME", "HITS", "MISSES", "HIT_RATIO", "ENTRIES", "OPS/S"]


def watch_stats(backend: Backend, interval: float, count: int | None, as_json: bool) -> None:
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
            found = store_stats(backend)
            now = time.monotonic()
            lookups = int(found.get("keyspace_hits", 0)) + int(found.get("keyspace_misses", 0))
            rate = None
            if before is not None and now > before[0]:
                rate = round((lookups - before[1]) / (now - before[0]), 1)
            before = (now, lookups)
            values = {key: found.get(key) for key in _WATCHED}
            if as_json:
                tick = {"time": time.strftime("%H:%M:%S"), **values, "ops_per_sec": rate}
                click.echo(json.dumps(tick, default=json_default))  # a JSON line per tick
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
