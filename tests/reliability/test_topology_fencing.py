"""Scenario 207 of issue 12: an ``at_most_once`` holder whose lock a failover lost.

Replication is asynchronous: a lock written on the master just before it dies may never
reach the replica that takes over. The fault is made real on a private Sentinel set: the
replication link is cut (``CLIENT KILL TYPE replica``) and the replica may not resync (an
ACL denies ``PSYNC`` and ``SYNC``), so the lock taken next never reaches it; then the
master is SIGKILLed. On the new
master the lock is gone; another caller computes and commits a newer value (or is still
computing it) when the old holder commits. The old holder must never overwrite it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCacheAtomic
from tests.redis_sentinel import RedisSentinelSet
from tests.redis_server import wait_until

from .figures import record

PREFIX = "fence_"


def _fenced(stack: CacheStack, compute: Callable[[int], str]) -> Any:
    @cached_for(minutes=5, stack=stack, atomic_writes="at_most_once")
    def fenced(x: int) -> str:
        return compute(x)

    return fenced


def atomic_function(
    servers: RedisSentinelSet, compute: Callable[[int], str]
) -> tuple[Any, RedisCacheAtomic]:
    """An ``at_most_once`` function on a RedisCacheAtomic of its own, and that backend.

    Every such function has the same name, hence the same keys. Each backend gets a read
    timeout of its own, hence a client (and pool) of its own.
    """
    atomic_function.count += 1  # type: ignore[attr-defined]
    backend = RedisCacheAtomic(
        sentinels=servers.sentinels,
        sentinel_master=servers.master_name,
        key_prefix=PREFIX,
        connect_timeout=0.3,
        read_timeout=0.3 + atomic_function.count / 1000,  # type: ignore[attr-defined]
        retry_interval=0.2,
        lock_wait=10,
    )
    return _fenced(CacheStack.from_tiers([backend]), compute), backend


atomic_function.count = 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("newer", ["stored", "computing"])
def test_a_holder_that_lost_its_lock_never_overwrites_a_newer_value(
    make_redis_sentinel: Callable[..., RedisSentinelSet], newer: str
) -> None:
    servers = make_redis_sentinel()
    old_master, replica = servers.master, servers.replica
    go_old, go_new, old_started = threading.Event(), threading.Event(), threading.Event()
    computations: list[str] = []

    def old_compute(x: int) -> str:
        computations.append("old")
        old_started.set()
        go_old.wait(20)
        return "old value"

    def new_compute(x: int) -> str:
        computations.append("new")
        if newer == "computing":
            go_new.wait(20)
        return "new value"

    def reader_compute(x: int) -> str:
        computations.append("reader")
        return "reader value"

    old, old_backend = atomic_function(servers, old_compute)
    new, new_backend = atomic_function(servers, new_compute)
    with old_master.probe() as admin:
        admin.execute_command("ACL", "SETUSER", "default", "-psync", "-sync")
        admin.execute_command("CLIENT", "KILL", "TYPE", "replica")

    def link_down() -> str | None:
        with replica.probe() as direct:
            status = direct.info("replication").get("master_link_status")
        return None if status == "down" else f"the link is {status}"

    wait_until(link_down, "the replica cut off")
    returned: dict[str, Any] = {}
    old_thread = threading.Thread(target=lambda: returned.update(old=old(7)), daemon=True)
    old_thread.start()
    assert old_started.wait(10), "the old holder took the lock and computes"
    lock = f"{PREFIX}__lock__:{old.cache_key(7)}"
    with old_master.probe() as admin:
        assert admin.exists(lock) == 1
    time.sleep(0.2)  # what the replica would have received by now
    with replica.probe() as direct:
        assert direct.exists(lock) == 0, "the lock never reached the replica"
    began = time.monotonic()
    old_master.kill()
    servers.wait_new_master(old_master)
    promotion = time.monotonic() - began

    new_thread = threading.Thread(target=lambda: returned.update(new=new(7)), daemon=True)
    new_thread.start()
    if newer == "stored":
        new_thread.join(15)
        assert returned.get("new") == "new value"
    else:
        wait_until(lambda: None if "new" in computations else "not yet", "the new holder")
    go_old.set()  # the old holder commits now, while the newer value is stored or computed
    time.sleep(0.5)
    go_new.set()
    old_thread.join(15)
    new_thread.join(15)
    reader, reader_backend = atomic_function(servers, reader_compute)
    read = reader(7)
    # 0: the old holder's commit reached the new master, and the commit script found the
    # newer value (or lock) there; it did not merely fail to write.
    old_errors = old_backend.stats.errors
    for backend in (old_backend, new_backend, reader_backend):
        backend.close()
    record(
        207,
        "at_most_once: a holder whose lock a failover lost commits after a newer caller",
        requirement="the old holder never overwrites the newer value, stored or being"
        " computed: it returns the stored value; the entry stays the newer caller's",
        figures={
            "newer value": newer,
            "promotion after (ms)": round(promotion * 1000, 1),
            "computations": " then ".join(computations),
            "old holder returned": returned.get("old"),
            "new caller returned": returned.get("new"),
            "entry read afterwards": read,
            "old holder's failed Redis calls": old_errors,
        },
        name=newer,
    )
    assert not old_thread.is_alive()
    assert not new_thread.is_alive()
    assert computations[:2] == ["old", "new"]
    assert "reader" not in computations, "the newer value is stored"
    assert read == "new value"
    assert old_errors == 0, "the commit script itself refused to overwrite"
    assert returned == {"old": "new value", "new": "new value"}
