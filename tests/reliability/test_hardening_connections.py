"""Hardening of issue 11 on connections: items 15 (pools of replaced states) and 9 (the herd).

Real redis-servers and real faults (``SIGSTOP``, ``SIGKILL``); figures for docs/reliability.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from stratacache import CacheStack
from tests.redis_server import RedisServer

from .figures import record
from .test_redis_faults import PREFIX, fd_count

RECONFIGURATIONS = 300
EXTRA_ALLOWED = 5


def client_count(server: RedisServer) -> int:
    """Connections the server has open, our own probe included."""
    return len(server.client().client_list())


def test_reconfigurations_leave_no_connection_open(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    stack = CacheStack()
    settings = {"CACHE_TYPE": "RedisCacheNoExceptions", "CACHE_REDIS_URL": server.url}
    stack.configure({**settings, "CACHE_KEY_PREFIX": PREFIX})
    stack.set("k", 1)
    clients_before, fds_before = client_count(server), fd_count()
    running = threading.Event()
    done = threading.Event()
    straggler: list[object] = []

    def slow_call() -> None:  # a call in progress on a state that gets replaced
        backend = stack.shared_cache.cache
        running.set()
        done.wait(5)
        straggler.append(backend.get("k"))

    thread = threading.Thread(target=slow_call)
    thread.start()
    running.wait(5)
    for n in range(RECONFIGURATIONS):
        timeout = 1.0 + n / 1000  # a connection option changed each time
        stack.configure(
            {**settings, "CACHE_KEY_PREFIX": PREFIX, "CACHE_REDIS_READ_TIMEOUT": timeout}
        )
        assert stack.get("k") == 1
    done.set()
    thread.join(5)
    clients_after, fds_after = client_count(server), fd_count()
    stack.close()
    record(
        scenario=115,
        title="Hardening 11.15: 300 reconfigurations changing a connection option",
        requirement=f"at most {EXTRA_ALLOWED} more Redis connections and open fds after them;"
        " a call running on a replaced state still answers",
        figures={
            "reconfigurations": RECONFIGURATIONS,
            "redis_connections_before": clients_before,
            "redis_connections_after": clients_after,
            "fds_before": fds_before,
            "fds_after": fds_after,
            "straggler_result": straggler[0] if straggler else "none",
        },
    )
    assert straggler == [1]
    assert clients_after - clients_before <= EXTRA_ALLOWED
    assert fds_after - fds_before <= EXTRA_ALLOWED
