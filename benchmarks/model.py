"""What a benchmark run produces: tables of figures per case, and checks against the targets.

A *case* is one row of the benchmarks issue's table (local hit, shared hit, ...). It holds
one or more :class:`Table` (contenders measured side by side, each figure with its ratio to
the table's anchor) and the :class:`Check` of each of our targets for it. A family module
(``cases_*.py``) measures its cases and returns them as :class:`CaseResult`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness import describe

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

CASE_TITLES: dict[str, str] = {
    "local_hit": "local hit",
    "no_serializer_local_hit": "no-serializer local hit",
    "stats_cost": "statistics cost",
    "shared_hit": "shared hit",
    "two_layer": "two-layer steady state",
    "three_tier": "three-tier steady state",
    "miss_write": "miss + write",
    "at_most_once": "at_most_once hit",
    "restricted_unpickler": "shared hit, restricted unpickler",
    "file_cache": "file cache",
    "payload": "payload size",
    "growth": "growth",
    "concurrency": "concurrency",
    "memory": "memory",
    "cluster_hit": "Cluster shared hit",
    "sentinel_hit": "Sentinel shared hit",
    "cluster_throughput": "Cluster concurrency",
    "async_local_hit": "async local hit",
    "async_shared_hit": "async shared hit",
    "async_throughput": "async shared-hit throughput",
}
"""Every case of the issue, by id (what ``--only`` takes), in the issue's order."""

Unit = Literal["ns", "ops/s", "bytes"]
UNIT_LABELS: dict[str, str] = {"ns": "time per call", "ops/s": "ops/s", "bytes": "bytes/entry"}


@dataclass(frozen=True)
class Context:
    """What every family gets: the mode, a redis-server of its own, a scratch directory.

    Attributes:
        smoke: Tiny counts (seconds), for CI; the figures then only prove the code runs.
        server: A redis-server on a free loopback port, emptied by nobody: each family uses
            its own key prefixes or databases.
        workdir: A temporary directory, removed after the run.
        skipped: Per case id, why a family did not measure it (the case is then missing
            from its results); e.g. the three-tier case on a core without ``CACHE_LAYERS``.
    """

    smoke: bool
    server: RedisServer
    workdir: Path
    skipped: dict[str, str] = field(default_factory=dict)

    def pick(self, full: Any, smoke: Any) -> Any:
        """Return ``smoke`` in smoke mode, else ``full``."""
        return smoke if self.smoke else full


@dataclass
class Table:
    """Contenders measured side by side, each with its ratio to the anchor.

    A ratio is paired: the median, over the rounds, of the contender's sample divided by the
    anchor's sample of the same round. The harness takes one sample of each contender per
    round, in turn, so a drift of the machine (another process waking up) hits both sides of
    each pair alike instead of shifting one contender's median.

    Attributes:
        title: What was measured, e.g. ``"shared hit, 10 KB value"``.
        anchor: The contender the ratios are to.
        unit: ``"ns"`` (per call or per key), ``"ops/s"`` or ``"bytes"`` (per entry).
        figures: Per contender: ``median``, ``p99``, ``min``, ``max``, ``runs``, ``ratio``.
        samples: Per contender, every sample, in the order of the rounds.
        higher_is_better: True for throughputs.
        per: What one sample is per, for the column header (``"call"``, ``"key"``).
    """

    title: str
    anchor: str
    unit: Unit
    figures: dict[str, dict[str, float]]
    samples: dict[str, list[float]]
    higher_is_better: bool = False
    per: str = "call"

    def ratio(self, contender: str, anchor: str | None = None) -> float:
        """The paired ratio of ``contender`` to ``anchor`` (default: the table's)."""
        pairs = zip(self.samples[contender], self.samples[anchor or self.anchor], strict=True)
        return statistics.median(value / base for value, base in pairs)


@dataclass(frozen=True)
class Check:
    """One target of the issue, checked against a measured ratio (or a count).

    Attributes:
        case: The case's title.
        contender: The stratacache contender.
        anchor: What it is compared to.
        value: The measured ratio (or count, when ``kind`` is ``"count"``).
        op: ``"<="`` or ``">="``: how ``value`` must compare to ``limit``.
        limit: The target.
        target: The target in words, e.g. ``"<= 2x cachetools"``.
        met: Whether ``value`` meets it.
        short: A short name of the comparison, for the chart.
        kind: ``"ratio"`` (drawn in the chart) or ``"count"``.
    """

    case: str
    contender: str
    anchor: str
    value: float
    op: str
    limit: float
    target: str
    met: bool
    short: str
    kind: str = "ratio"


@dataclass
class CaseResult:
    """The tables and checks of one case of the issue.

    Attributes:
        id: The case's id (a key of :data:`CASE_TITLES`).
        tables: The figures, one table per group of contenders measured together.
        checks: One per target; every case has at least one.
        notes: Anything else worth keeping (commands seen by Redis, counts).
    """

    id: str
    tables: list[Table]
    checks: list[Check]
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The case's title, as in the issue."""
        return CASE_TITLES[self.id]

    def as_json(self) -> dict[str, Any]:
        """The case as plain JSON data."""
        return {"title": self.title, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        """The case :meth:`as_json` wrote (to render a stored run again)."""
        return cls(
            data["id"],
            [Table(**table) for table in data["tables"]],
            [Check(**item) for item in data["checks"]],
            data["notes"],
        )


def make_table(
    title: str,
    samples: Mapping[str, Sequence[float]],
    anchor: str,
    *,
    unit: Unit = "ns",
    names: Sequence[str] | None = None,
    higher_is_better: bool = False,
    per: str = "call",
) -> Table:
    """Describe the samples of ``names`` (default: all) and their paired ratios to ``anchor``.

    Args:
        title: The table's title.
        samples: Per contender, its samples (from the harness).
        anchor: The contender the ratios are to (must be among ``names``).
        unit: The unit of the samples.
        names: The contenders to keep, in order.
        higher_is_better: True for throughputs.
        per: What one sample is per (``"call"``, ``"key"``).

    Returns:
        The table.
    """
    names = list(names or samples)
    figures = {n: describe(samples[n], higher_is_better=higher_is_better) for n in names}
    kept = {n: list(samples[n]) for n in names}
    table = Table(title, anchor, unit, figures, kept, higher_is_better, per)
    for name, values in figures.items():
        values["ratio"] = table.ratio(name)
    return table


def check(
    case: str,
    table: Table,
    contender: str,
    target: str,
    *,
    short: str,
    at_most: float | None = None,
    at_least: float | None = None,
    anchor: str | None = None,
    label: str | None = None,
) -> Check:
    """Check the ratio of ``contender`` to ``anchor`` (default: the table's) in ``table``.

    Args:
        case: The case's id.
        table: Where both contenders were measured side by side.
        contender: The stratacache contender.
        target: The target in words.
        short: A short name of the comparison, for the chart.
        at_most: The highest ratio the target allows (times, memory).
        at_least: The lowest ratio the target allows (throughputs); give one of the two.
        anchor: The contender to compare to, if not the table's anchor.
        label: How to name the contender in the check (default: its name).

    Returns:
        The check, met or missed.
    """
    anchor = anchor or table.anchor
    ratio = table.ratio(contender, anchor)
    if at_most is not None:
        op, limit, met = "<=", at_most, ratio <= at_most
    elif at_least is not None:
        op, limit, met = ">=", at_least, ratio >= at_least
    else:
        raise TypeError("check() needs at_most or at_least")
    contender = label or contender
    return Check(CASE_TITLES[case], contender, anchor, ratio, op, limit, target, met, short)


def count_check(case: str, contender: str, what: str, count: int, target: str) -> Check:
    """A target on a count that must be zero (e.g. ``KEYS`` calls)."""
    return Check(
        CASE_TITLES[case], contender, what, count, "<=", 0, target, count == 0, what, "count"
    )
