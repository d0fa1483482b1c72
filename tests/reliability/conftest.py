"""Every test under tests/reliability is marked ``reliability`` (``pytest -m reliability``).

The scenarios that drive real servers with worker processes and assert timings under the load
they make (read timeouts of 0.2 s, lock TTLs, failover windows) are also marked
``under_load``: ``make pytest`` runs the rest of the suite in parallel first, then these alone,
one after another, so that no other test's load skews their timings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

UNDER_LOAD = {
    "test_atomic_writes",
    "test_filesystem_stress",
    "test_hardening_atomic",
    "test_hardening_connections",
    "test_redis_faults",
    "test_topology_errors",
    "test_topology_faults",
    "test_topology_fencing",
    "test_topology_resharding",
}
"""The modules whose scenarios time themselves under a load they make."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of this directory, so the suite can be run alone, and those under load."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if HERE in path.parents:
            item.add_marker(pytest.mark.reliability)
            if path.stem in UNDER_LOAD:
                item.add_marker(pytest.mark.under_load)
