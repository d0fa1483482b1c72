"""Auto-recovery across an outage, measured: invalidations and local writes made while a
redis-server the test started is down (SAVE, then SIGKILL: it comes back with its stale
entries), then stale reads counted in two processes after recovery.

Instance A (this process) has a local tier above RedisCacheNoExceptions, the invalidation
channel off: only auto-recovery can set its local tier and Redis right. During the outage
it invalidates ``price`` (entries Redis still holds) and computes ``quote`` (a local copy
only). Instance B (another process, no local tier) writes newer quotes once Redis is back,
and reads prices from Redis. Each function returns the source of truth, which changes
when B writes: a read after recovery may recompute, never return a copy older than that.
Runs in about 5 s, most of it B's start.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import clean_env, root_pythonpath
from tests.redis_server import RedisServer
from tests.reliability import outage_peer
from tests.reliability.figures import record
from tests.test_recovery import crash_keeping_data, shared_counts, wait_replayed

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unsigned pickles

ITEMS = 20
PEER = (
    "import sys, pathlib; from tests.reliability.outage_peer import main;"
    " main(sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]))"
)


def test_invalidations_and_local_writes_during_an_outage_leave_no_stale_read(
    make_redis_server: Callable[[], RedisServer], tmp_path: Path
) -> None:
    server = make_redis_server()
    outage_peer.configure(server.url, local=True)
    stack, price, quote = outage_peer.stack, outage_peer.price, outage_peer.quote
    outage_peer.VALUE[0] = "v1"
    for item in range(ITEMS):
        assert price(item) == "v1"
    peer = subprocess.Popen(
        [sys.executable, "-c", PEER, server.url, str(tmp_path), str(ITEMS)],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(PYTHONPATH=root_pythonpath()),
    )
    try:
        assert peer.stdout is not None
        assert peer.stdout.readline().strip() == "ready"
        crash_keeping_data(server)
        outage_peer.VALUE[0] = "v2"
        for item in range(ITEMS):
            price.invalidate(item)  # queued: Redis keeps v1
            assert quote(item) == f"v2{item}"  # computed: a local copy only
        server.start()
        restarted = time.monotonic()
        outage_peer.VALUE[0] = outage_peer.NEWER  # the source changed: B writes it
        (tmp_path / "restarted").touch()
        written = peer.stdout.readline().split()
        assert written[0] == "written", written
        replayed = wait_replayed(stack)
        stale_here = 0
        for _ in range(10):  # A, after recovery: its own reads
            stale_here += sum(price(item) == "v1" for item in range(ITEMS))
            stale_here += sum(quote(item) != outage_peer.newer(item) for item in range(ITEMS))
        time.sleep(0.5)
    finally:
        (tmp_path / "stop").touch()
        out, _ = peer.communicate(timeout=30)
    reads = [line.split() for line in out.splitlines()]
    after = [value for at, _, value in reads if float(at) > replayed]
    counts = shared_counts(stack)
    record(
        401,
        "SIGKILL of the server (data saved) during invalidations and local writes",
        requirement="after recovery, 0 stale reads: in the instance that invalidated and"
        " computed during the outage (its local copies re-checked), and in another process"
        " reading Redis once the replay ran",
        figures={
            "invalidations_queued": counts["recovery_queued"],
            "replayed": counts["recovery_replayed"],
            "local_copies_rechecked": counts["recovery_rechecked"],
            "stale_reads_here": stale_here,
            "stale_reads_other_process": after.count("v1"),
            "other_process_reads": len(after),
            "restart_to_replayed_ms": round((replayed - restarted) * 1000),
        },
    )
    assert counts["recovery_queued"] == ITEMS
    assert counts["recovery_replayed"] == ITEMS
    assert counts["recovery_rechecked"] == ITEMS  # each quote's local copy, once
    assert stale_here == 0, "0 stale reads after recovery in the instance that recovered"
    assert len(after) >= ITEMS, "the other process kept reading after the replay"
    assert after.count("v1") == 0, "0 stale reads in the other process after the replay"
    stack.close()
