"""Render ``docs/reliability.md`` from the figures the reliability suite recorded.

Run by ``make reliability``, which first runs ``tests/reliability`` (with the 60 s soak) so
that every figure comes from that one run. Run alone, it renders whatever figures are in
``build/reliability/`` (see ``tests/reliability/figures.py``).
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "build" / "reliability"
OUTPUT = ROOT / "docs" / "reliability.md"

INTRO = """\
# Reliability

A cache sits in the hot path of every request. These figures come from
`tests/reliability/`, a suite that starts real `redis-server` processes on loopback ports and
real worker processes, then injects faults: refused connections, a frozen server (SIGSTOP),
a server killed and restarted under load, error replies, a full server, corrupted and hostile
payloads, killed and frozen lock holders, writers killed mid-write, hostile keys and bad
configuration. The suite runs in CI with every `make test` (its assertions are the
requirements below); this page is regenerated, figures included, by one command:

```sh
make reliability
```

which runs the suite plus a 60 s soak, then renders this page from the figures recorded in
that run.
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return lines


HARDENING = 100
"""Scenarios from here on are the hardening items of issue 11 (100 + the item's number)."""
TOPOLOGIES = 200
"""Scenarios from here on are the Redis Cluster and Sentinel scenarios of issue 12."""
COHERENCE = 300
"""Scenarios from here on are the invalidation channel's losses (issue 14)."""
RECOVERY = 400
"""Scenarios from here on are auto-recovery across an outage (issue 15)."""

TOPOLOGIES_INTRO = """\
Failovers, a live slot migration and a lost lock, on private topologies started for each
test: a Redis Cluster of 3 masters and 3 replicas (node timeout 1 s), a Sentinel set of a
master, a replica and 3 sentinels (down-after 1 s). Masters are SIGKILLed or frozen
(SIGSTOP), or handed over (`CLUSTER FAILOVER`, `SENTINEL FAILOVER`); the load is 2 worker
processes of 4 threads each, with no local layer, so every call reaches Redis. On a
cluster, the fault hits the master of the hot slot: a decorated function's keys carry its
name as their hash tag, so all of them live in one slot.

`at_most_once` across a failover is best effort, plainly: from the master's death until
the tier is back, RedisCacheAtomic degrades as RedisCacheNoExceptions does: callers compute
(one thread per process at a time) and nothing can be stored, so the repeated
computations of 201 and 203 count nearly every call of that window. Just after a
promotion, a lock taken on the old master may have died with it (replication is
asynchronous): one more caller may compute. What holds: a holder whose lock was lost
never overwrites a newer value (207), and once the tier is back no argument is computed
twice. During a slot migration, an `at_most_once` commit whose keys the migration has
split between two masters is refused (`TRYAGAIN`) until they are together again, and
redis-py gives up after some 0.4 s: the caller gets its value, which is not stored, and the
tier stays in use (206).
"""


def _summary(entries: list[dict[str, Any]]) -> list[str]:
    lines = ["| # | scenario | requirement | figures |", "|---|---|---|---|"]
    for entry in entries:
        figures = "; ".join(f"{k}: {_cell(v)}" for k, v in entry["figures"].items())
        lines.append(
            f"| {entry['scenario']} | {_cell(entry['title'])} | {_cell(entry['requirement'])}"
            f" | {figures} |"
        )
    return lines


def render(entries: list[dict[str, Any]], when: str) -> str:
    """Return the page for the recorded ``entries``."""
    entries = sorted(entries, key=lambda e: (e["scenario"], e["title"]))
    lines = [INTRO]
    lines.append(
        f"Figures of the run of {when}, Python {platform.python_version()} on"
        f" {platform.machine()} ({sys.platform}), on a shared 2-core machine: timings vary"
        " from run to run; the requirements hold on every run (the tests assert them).\n"
    )
    faults = [e for e in entries if e["scenario"] < HARDENING]
    hardening = [e for e in entries if HARDENING <= e["scenario"] < TOPOLOGIES]
    topologies = [e for e in entries if TOPOLOGIES <= e["scenario"] < COHERENCE]
    coherence = [e for e in entries if COHERENCE <= e["scenario"] < RECOVERY]
    recovery = [e for e in entries if e["scenario"] >= RECOVERY]
    lines.append("## Summary\n")
    lines += _summary(faults)
    if hardening:
        lines.append("\n## Hardening\n")
        lines.append(
            "Regressions found by hostile testing (issue 11): scenario 100 + the item's"
            " number. Each test failed before its fix.\n"
        )
        lines += _summary(hardening)
    if topologies:
        lines.append("\n## Redis Cluster and Sentinel (issue 12)\n")
        lines.append(TOPOLOGIES_INTRO)
        lines += _summary(topologies)
    if coherence:
        lines.append("\n## Coherent local tiers: a lost invalidation channel (issue 14)\n")
        lines.append(
            "Two instances (a local tier over one redis-server the test started); the"
            " server is killed, frozen or cuts the subscriber off while the other writes."
            " See [Coherent local tiers](coherence.md).\n"
        )
        lines += _summary(coherence)
    if recovery:
        lines.append("\n## Auto-recovery across an outage (issue 15)\n")
        lines.append(
            "Two instances on one redis-server the test started, the invalidation channel"
            " off: the server saves its data and is killed while one instance invalidates"
            " entries and computes values (local copies only); the other writes newer values"
            " once it is back. See [auto-recovery]"
            "(freshness.md#invalidations-during-an-outage-auto-recovery).\n"
        )
        lines += _summary(recovery)
    detailed = [e for e in entries if e["table"]]
    if detailed:
        lines.append("\n## Details\n")
        for entry in detailed:
            lines.append(f"### {entry['scenario']}. {entry['title']}\n")
            lines += _table(entry["table"])
            lines.append("")
    missing = sorted(set(range(1, 16)) - {e["scenario"] for e in entries})
    if missing:
        lines.append(
            "\nNot in this run: scenario " + ", ".join(map(str, missing)) + " (no figures were"
            " recorded; run `make reliability` for the full set).\n"
        )
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    """Render the page from ``build/reliability``."""
    entries = [json.loads(p.read_text()) for p in sorted(FIGURES.glob("scenario-*.json"))]
    if not entries:
        sys.exit(f"no figures in {FIGURES}: run `make reliability` (it runs the suite first)")
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    OUTPUT.write_text(render(entries, when))
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(entries)} records)")


if __name__ == "__main__":
    main()
