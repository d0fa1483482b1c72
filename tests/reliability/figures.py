"""Recording the figures of the reliability scenarios, for ``docs/reliability.md``.

Each scenario test calls :func:`record` with what it measured. The figures go to one JSON file
per test under ``build/reliability/`` (or ``$STRATACACHE_FIGURES_DIR``);
``docs/generate_reliability.py`` renders them into the documentation. Recording never changes
whether a test passes: the assertions do that.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent

Row = dict[str, Any]


def figures_dir() -> Path:
    """Where the figures of this run go."""
    return Path(os.environ.get("STRATACACHE_FIGURES_DIR", ROOT / "build" / "reliability"))


def record(
    scenario: int,
    title: str,
    *,
    requirement: str,
    figures: dict[str, Any],
    table: list[Row] | None = None,
    name: str | None = None,
) -> None:
    """Record one scenario's figures.

    Args:
        scenario: The scenario's number in issue 5 (1-15), or 100 + the item's number for
            the hardening items of issue 11 (``102`` for item 2), 201-207 for the Redis
            Cluster and Sentinel scenarios of issue 12, 301-304 for the invalidation
            channel's losses (issue 14), or 401 for auto-recovery across an outage
            (issue 15).
        title: What the scenario does, in a few words.
        requirement: What must hold (the pass condition the test asserts).
        figures: The measured figures, by name (numbers or short strings).
        table: Optional rows (dicts with the same keys), e.g. an outcome per case.
        name: Distinguishes several records of one scenario (one file each).
    """
    directory = figures_dir()
    directory.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "main").lower()).strip("-")
    entry = {
        "scenario": scenario,
        "title": title,
        "requirement": requirement,
        "figures": figures,
        "table": table or [],
    }
    path = directory / f"scenario-{scenario:02d}-{slug}.json"
    path.write_text(json.dumps(entry, indent=2, default=str) + "\n")


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` (nearest rank); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]
