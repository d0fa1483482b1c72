"""The cost of statistics: the local hit with ``CACHE_STATS`` on (the default) and off.

The four contenders of ``stats_cost.py`` (``cached_for`` on SimpleCache and with
``no_serialization=True``, each on a counting stack and on one with ``CACHE_STATS=false``)
run side by side in one group; each "stats on" figure is compared with its "stats off" twin.
"""

from __future__ import annotations

from harness import measure
from model import CaseResult, Context, check, make_table
from stats_cost import BY_REFERENCE, OFF, ON, SIMPLE, TARGET, build_cases, case_name

CASES = ("stats_cost",)


def run(ctx: Context) -> list[CaseResult]:
    """Measure the four contenders and return the case, one table per kind of hit."""
    batches, calls = ctx.pick((150, 800), (5, 100))
    samples = measure(build_cases(), batches, calls)
    tables, checks = [], []
    for kind in (SIMPLE, BY_REFERENCE):
        on, off = case_name(kind, ON), case_name(kind, OFF)
        table = make_table(f"statistics cost, {kind}", samples, off, names=[off, on])
        tables.append(table)
        checks.append(
            check(
                "stats_cost",
                table,
                on,
                f"<= {TARGET}x the local hit with CACHE_STATS off",
                short=f"stats on vs off, {kind}",
                at_most=TARGET,
            )
        )
    return [CaseResult("stats_cost", tables, checks)]
