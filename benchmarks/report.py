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
    """One table of figures as Markdown: every contender, its figures and its ratio."""
    if table.unit == "ns":
        scale, unit = _time_scale(table)
        unit = f"{unit}/{table.per}"
    else:
        scale, unit = 1.0, table.unit if table.unit == "ops/s" else f"bytes/{table.per}"
    lines = [
        f"| contender | median ({unit}) | p99 | min | max | runs | ratio to {table.anchor} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in table.figures.items():
        cells = " | ".join(_number(f[k] / scale) for k in ("median", "p99", "min", "max"))
        lines.append(f"| {name} | {cells} | {f['runs']:.0f} | {ratio_text(f['ratio'])} |")
    return "\n".join(lines)


def _value(item: Check) -> str:
    return ratio_text(item.value) if item.kind == "ratio" else f"{item.value:.0f}"


def targets_table(checks: Sequence[Check]) -> str:
    """Every target: the measured ratio and whether it is met."""
    lines = [
        "| case | stratacache | anchor | ratio | target | result |",
        "|---|---|---|---:|---|---|",
    ]
    for c in checks:
        result = "met" if c.met else "**missed**"
        lines.append(
            f"| {c.case} | {c.contender} | {c.anchor} | {_value(c)} | {c.target} | {result} |"
        )
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
        f"![Ratio of each stratacache contender to its anchor, against its target]({CHART})",
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


def write_chart(path: Path, checks: Sequence[Check]) -> None:
    """A horizontal bar per ratio target (log scale), with the target marked on each bar.

    Green bars meet their target, red ones miss it. The target is a black tick; its triangle
    points to the side where the ratio must be.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = [c for c in checks if c.kind == "ratio"]
    fig, ax = plt.subplots(figsize=(10, 0.36 * len(rows) + 2.2), layout="constrained")
    positions = list(range(len(rows)))[::-1]
    for y, c in zip(positions, rows, strict=True):
        ax.barh(y, c.value, height=0.62, color=MET if c.met else MISSED, zorder=2)
        ax.plot([c.limit, c.limit], [y - 0.42, y + 0.42], color="black", linewidth=2, zorder=3)
        ax.plot(c.limit, y, marker="<" if c.op == "<=" else ">", color="black", zorder=3)
        ax.annotate(
            ratio_text(c.value),
            (max(c.value, c.limit), y),
            xytext=(9, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(positions, [f"{c.case}: {c.short}" for c in rows], fontsize=8.5)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xscale("log")
    lowest = min(min(c.value, c.limit) for c in rows)
    highest = max(max(c.value, c.limit) for c in rows)
    ax.set_xlim(lowest / 1.6, highest * 2.2)
    ax.axvline(1.0, color="grey", linewidth=0.8, zorder=1)
    ax.grid(axis="x", which="major", alpha=0.4, zorder=0)
    ax.set_xlabel("stratacache / anchor (median; log scale). Times: < 1 is faster; ops/s: > 1")
    ax.legend(
        handles=[
            Patch(color=MET, label="target met"),
            Patch(color=MISSED, label="target missed"),
            Line2D([], [], color="black", marker="<", label="target: ratio must be left of it"),
            Line2D([], [], color="black", marker=">", label="target: ratio must be right of it"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.09),
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle("stratacache against its anchors: measured ratio (bar), target (black mark)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
