"""The Redis backends' connections resolve host names within the connect timeout.

The slow-resolver case itself, against a DNS server that never answers, is a reliability
scenario (``tests/reliability/test_hardening_connections.py``); these are the ordinary paths.
"""

from __future__ import annotations

import os
import socket

import redis

from stratacache_plugins.rediscache import RedisCache
from stratacache_plugins.rediscache.resolution import (
    BoundedConnection,
    BoundedSSLConnection,
    bounded_class,
    resolve,
)
from tests.redis_server import RedisServer


def test_a_numeric_address_is_its_own_resolution() -> None:
    assert resolve("127.0.0.1", 7000, 0, 0.5) == [("127.0.0.1", 7000)]


def test_a_name_resolves_through_the_bounded_lookup() -> None:
    addresses = resolve("localhost", 7000, socket.AF_INET, 2.0)
    assert ("127.0.0.1", 7000) in addresses


def test_the_urls_scheme_chooses_the_bounded_connection_class(redis_server: RedisServer) -> None:
    plain = RedisCache(url=f"redis://localhost:{redis_server.port}/0", key_prefix="resolve")
    tls = RedisCache(url="rediss://localhost:1/0", key_prefix="resolve")
    try:
        assert plain.client.connection_pool.connection_class is BoundedConnection
        assert tls.client.connection_pool.connection_class is BoundedSSLConnection
        plain.set("k", 1)  # by name, through the bounded connect
        assert plain.get("k") == 1
    finally:
        plain.close()
        tls.close()


def test_a_unix_socket_keeps_redis_pys_connection_class() -> None:
    unix = redis.connection.UnixDomainSocketConnection
    assert bounded_class(unix) is unix


def test_a_forked_child_resolves_names_of_its_own() -> None:
    resolve("localhost", 7000, socket.AF_INET, 2.0)
    pid = os.fork()
    if pid == 0:  # the child: a lookup of its own, not a parent's pending one
        ok = ("127.0.0.1", 7000) in resolve("localhost", 7000, socket.AF_INET, 2.0)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
