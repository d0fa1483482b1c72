"""Write a run's figures: JSON, Markdown tables and a PNG chart of the ratios and targets."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model import CASE_TITLES, CaseResult, Check, Table

COMMAND = ".venv/bin/python benchmarks/run.py"
CHART = "benchmarks.png"
MET, MISSED = "#3a923a", "#d04a3a"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def ratio_text(ratio: float) -> str:
    """A ratio as text, with a third decimal below 0.1 (``0.004x``, ``1.25x``)."""
    return f"{ratio:.3f}x" if ratio < 0.095 else f"{ratio:.2f}x"


def _time_scale(table: Table) -> tuple[float, str]:
    base = table.figures[table.anchor]["median"]
    if base >= 1e6:
        return 1e6, "ms"
    if base >= 1e4:
        return 1e3, "µs"
    return 1.0, "ns"


def figures_table(table: Table) -> str:
    """One table of figures as Markdown: each contender's ratio first, then its figures.

    The anchor and the unit are said in a line above it, so the columns stay narrow.
    """
    if table.unit == "ns":
        scale, unit = _time_scale(table)
        unit = f"{unit} per {table.per}"
    else:
        scale, unit = 1.0, table.unit if table.unit == "ops/s" else f"bytes per {table.per}"
    lines = [
        f"Ratio to {table.anchor}; figures in {unit}.",
        "",
        "| contender | ratio | median | p99 | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in table.figures.items():
        cells = " | ".join(_number(f[k] / scale) for k in ("median", "p99"))
        lines.append(f"| {name} | {ratio_text(f['ratio'])} | {cells} | {f['runs']:.0f} |")
    return "\n".join(lines)


def _value(item: Check) -> str:
    return ratio_text(item.value) if item.kind == "ratio" else f"{item.value:.0f}"


def targets_table(checks: Sequence[Check]) -> str:
    """Every target, the verdict first: the comparison, the measured ratio, the target.

    The comparison is the check's short name; the contenders' full names are in the figures.
    """
    lines = ["| result | case | compared | ratio | target |", "|---|---|---|---:|---|"]
    for c in checks:
        result = "met" if c.met else "**missed**"
        lines.append(f"| {result} | {c.case} | {c.short} | {_value(c)} | {c.target} |")
    return "\n".join(lines)


def environment_lines(env: Mapping[str, Any]) -> list[str]:
    """The environment as Markdown list items."""
    versions = ", ".join(f"{name} {v}" for name, v in env["versions"].items() if v)
    return [
        f"- {env['implementation']} {env['python']} on {env['platform']}",
        f"- CPU: {env['cpu_count']} x {env['cpu_model']}; memory: {env['memory_gib']} GiB",
        f"- redis-server {env['redis_server']} (started by the run on a free loopback port)",
        f"- {versions}",
    ]


def markdown(run: Mapping[str, Any], cases: Sequence[CaseResult]) -> str:
    """The whole report: how to reproduce it, the targets, the chart, every figure."""
    checks = [c for case in cases for c in case.checks]
    missed = sum(not c.met for c in checks)
    skipped: Mapping[str, str] = run.get("skipped") or {}
    mode = (
        "smoke run (tiny counts: the figures only prove the code runs)"
        if run["smoke"]
        else "full run"
    )
    parts = [
        "# Benchmarks",
        "",
        f"stratacache against the libraries users would pick instead, measured side by side"
        f" in one {mode} on {run['date']} ({run['seconds']:.0f} s). Reproduce with:",
        "",
        "```bash",
        run["command"],
        "```",
        "",
        f"(`{COMMAND} --smoke` runs the same cases with tiny counts in seconds;"
        " `--only CASE[,CASE]` runs some of them; `--out DIR` chooses where results go.)",
        "",
        "How it measures: each contender is a callable doing one operation; the contenders of a"
        " group run batch by batch in turn, one batch of each per round in a shuffled order"
        " (or round by round, for clears, processes and memory), so drift of the machine hits"
        " them alike. A sample is the mean time per call"
        " of one batch (`time.perf_counter_ns`), after a warm-up batch; the figures are the"
        " median, p99, min and max of the samples. A ratio is paired: the median, over the"
        " rounds, of a contender's sample over its anchor's sample of the same round, so a"
        " burst of load on this shared machine hits both sides of each pair. Below 1 is"
        " faster for times; above 1 is faster for throughputs (ops/s).",
        "",
        "In the tables: *ratio* is that paired ratio, to the anchor named above the table"
        " (for a target, to the anchor its *compared* column names: the stratacache contender"
        " first); *median* and *p99* (the 99th percentile) are over the samples, *runs* is"
        " their number; *proc.* is processes; *raw* is redis-py called directly, the floor a"
        " shared hit cannot beat. The run's JSON (`results.json`, published as"
        " `benchmarks.json` beside this page) has the min and max too, and every sample.",
        "",
        "## Targets",
        "",
        # The section docs/performance.md includes (pymdownx.snippets), so it never drifts.
        "<!-- --8<-- [start:targets] -->",
        f"{len(checks) - missed} of {len(checks)} targets met.",
        "",
        targets_table(checks),
        "",
        *[f"- Not measured: {CASE_TITLES[case]}: {why}" for case, why in skipped.items()],
        *([""] if skipped else []),
        "<!-- --8<-- [end:targets] -->",
        "",
        # Linked to itself: a reader opens the chart at its full size.
        f"[![Ratio of each stratacache contender to its anchor, against its target]({CHART})]"
        f"({CHART})",
        "",
        "## Environment",
        "",
        *environment_lines(run["environment"]),
        "",
        "## Figures",
    ]
    for case in cases:
        parts += ["", f"### {case.title}"]
        for table in case.tables:
            if table.title != case.title:
                parts += ["", f"{table.title}:"]
            parts += ["", figures_table(table)]
        if case.notes:
            notes = ", ".join(f"{k}: {v}" for k, v in case.notes.items())
            parts += ["", f"Notes: {notes}"]
    return "\n".join(parts) + "\n"


def write_json(path: Path, run: Mapping[str, Any], cases: Sequence[CaseResult]) -> None:
    """Every figure, check and note, with the environment, as JSON."""
    data = {**run, "cases": {case.id: case.as_json() for case in cases}}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _ratio_label(value: float, _position: float) -> str:
    """A log-axis tick as a ratio: ``0.05x``, ``1x``, ``2x``."""
    return f"{value:g}x"


def write_chart(path: Path, checks: Sequence[Check]) -> None:
    """A horizontal bar per ratio target (log scale), with the target marked on each bar.

    Green bars meet their target, red ones miss it. The target is a black tick; its triangle
    points to the side where the ratio must be. The log axis is labelled at 1, 2 and 5 of
    each decade, and the chart is drawn for the width of the docs' column (it links to
    itself at full size), with a row per target and a line between cases.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = [c for c in checks if c.kind == "ratio"]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.8), layout="constrained")
    positions = list(range(len(rows)))[::-1]
    for y, c in zip(positions, rows, strict=True):
        ax.barh(y, c.value, height=0.66, color=MET if c.met else MISSED, zorder=2)
        ax.plot([c.limit, c.limit], [y - 0.42, y + 0.42], color="black", linewidth=2, zorder=3)
        ax.plot(c.limit, y, marker="<" if c.op == "<=" else ">", color="black", zorder=3)
        ax.annotate(
            ratio_text(c.value),
            (max(c.value, c.limit), y),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    for y, above, below in zip(positions[1:], rows, rows[1:], strict=False):
        if above.case != below.case:
            ax.axhline(y + 0.5, color="grey", linewidth=0.5, alpha=0.5, zorder=1)
    ax.set_yticks(positions, [f"{c.case}: {c.short}" for c in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xscale("log")
    lowest = min(min(c.value, c.limit) for c in rows)
    highest = max(max(c.value, c.limit) for c in rows)
    ax.set_xlim(lowest / 1.6, highest * 2.2)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_label))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=8, top=True, labeltop=True)
    ax.axvline(1.0, color="grey", linewidth=0.8, zorder=1)
    ax.grid(axis="x", which="major", alpha=0.4, zorder=0)
    ax.grid(axis="x", which="minor", alpha=0.12, zorder=0)
    ax.set_xlabel("ratio to the anchor (log scale): < 1x is faster for times, > 1x for ops/s")
    fig.legend(
        handles=[
            Patch(color=MET, label="target met"),
            Patch(color=MISSED, label="target missed"),
            Line2D([], [], color="black", marker="<", label="target: ratio left of it"),
            Line2D([], [], color="black", marker=">", label="target: ratio right of it"),
        ],
        loc="outside lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle("stratacache against its anchors: ratio (bar) and target (black mark)")
    fig.savefig(path, dpi=200)
    plt.close(fig)
