"""TLS (with a CA and client certificates) and ACL users, on one server and on a Cluster.

The servers are real redis-servers started here: TLS on a port of its own beside the plain
port the fixtures probe, with client certificates required (``tls-auth-clients yes``); the
certificates come from a throwaway CA (trustme). ACL users are created with ``ACL SETUSER``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from stratacache import CacheStack, cached_for
from stratacache_plugins.rediscache import RedisCache, RedisCacheError
from tests.redis_sentinel import RedisSentinelSet
from tests.redis_server import RedisServer, free_port, free_ports
from tests.redis_topologies import RedisClusterNodes


class Certificates:
    """A CA, the servers' certificate (for 127.0.0.1 and localhost) and a client's."""

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        self.ca = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.server_cert, self.server_key = directory / "server.pem", directory / "server.key"
        server.cert_chain_pems[0].write_to_path(str(self.server_cert))
        server.private_key_pem.write_to_path(str(self.server_key))
        client = ca.issue_cert("stratacache-client")
        self.client_cert, self.client_key = directory / "client.pem", directory / "client.key"
        client.cert_chain_pems[0].write_to_path(str(self.client_cert))
        client.private_key_pem.write_to_path(str(self.client_key))

    def server_options(self, tls_port: int) -> list[str]:
        """redis-server's options: TLS on ``tls_port``, client certificates required."""
        return [
            *("--tls-port", str(tls_port), "--tls-auth-clients", "yes"),
            *("--tls-cert-file", str(self.server_cert), "--tls-key-file", str(self.server_key)),
            *("--tls-ca-cert-file", str(self.ca)),
        ]

    def client_options(self) -> dict[str, str]:
        """What ``CACHE_OPTIONS`` gives redis-py: the CA and the client's certificate."""
        return {
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.client_cert),
            "ssl_keyfile": str(self.client_key),
        }


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return Certificates(tmp_path)


@pytest.fixture
def tls_server(tmp_path: Path, certificates: Certificates) -> Iterator[tuple[RedisServer, int]]:
    server = RedisServer(tmp_path / "tls")
    tls_port = free_port()
    server.options = certificates.server_options(tls_port)
    server.start()
    yield server, tls_port
    server.stop()


def test_a_tls_server_with_client_certificates(
    tls_server: tuple[RedisServer, int], certificates: Certificates
) -> None:
    _, tls_port = tls_server
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": f"rediss://127.0.0.1:{tls_port}/0",
            "CACHE_OPTIONS": certificates.client_options(),
            "CACHE_KEY_PREFIX": "tls",
        }
    )

    @cached_for(minutes=5, stack=stack)
    def price(item: int) -> dict[str, int]:
        return {"item": item}

    assert price(1) == price(1) == {"item": 1}
    assert stack.shared_cache.cache.describe()["entries"] == 1


def test_a_tls_server_refuses_a_client_without_a_certificate(
    tls_server: tuple[RedisServer, int], certificates: Certificates
) -> None:
    _, tls_port = tls_server
    backend = RedisCache(url=f"rediss://127.0.0.1:{tls_port}/0", ssl_ca_certs=str(certificates.ca))
    with pytest.raises(RedisCacheError):  # the handshake fails: an error of ours, not redis-py's
        backend.set("k", 1)


def test_an_acl_user_on_one_server(make_redis_server: Callable[[], RedisServer]) -> None:
    server = make_redis_server()
    server.client().acl_setuser(
        "cache-user", enabled=True, passwords=["+s3cret"], keys=["~app:*"], commands=["+@all"]
    )
    stack = CacheStack()
    stack.configure(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": server.url,
            "CACHE_REDIS_USERNAME": "cache-user",
            "CACHE_REDIS_PASSWORD": "s3cret",
            "CACHE_KEY_PREFIX": "app",
        }
    )
    stack.set("k", 1)
    assert stack.get("k") == 1
    wrong = RedisCache(url=server.url, username="cache-user", password="wrong", key_prefix="app")
    with pytest.raises(RedisCacheError, match="invalid username-password"):
        wrong.get("k")


def test_an_acl_user_on_every_node_of_a_cluster(redis_cluster: RedisClusterNodes) -> None:
    for node in redis_cluster.nodes:
        node.probe().acl_setuser(
            "cluster-user", enabled=True, passwords=["+pw"], keys=["~*"], commands=["+@all"]
        )
    backend = RedisCache(
        cluster=redis_cluster.startup_nodes,
        username="cluster-user",
        password="pw",
        key_prefix="acl_",
    )
    stack = CacheStack.from_tiers([backend])
    calls: list[int] = []

    @cached_for(minutes=5, stack=stack)
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert [square(n) for n in range(10)] == [square(n) for n in range(10)]
    assert len(calls) == 10


def test_a_tls_cluster_with_client_certificates(tmp_path: Path, certificates: Certificates) -> None:
    cluster = RedisClusterNodes(tmp_path / "tls-cluster")
    tls_ports = free_ports(len(cluster.nodes))
    for node, port in zip(cluster.nodes, tls_ports, strict=True):
        # TLS for clients, for the cluster bus and for replication; the plain port stays
        # for the fixtures' probes.
        node.options += [*certificates.server_options(port), "--tls-cluster", "yes"]
        node.options += ["--tls-replication", "yes"]
    cluster.start()
    try:
        nodes = ",".join(f"rediss://127.0.0.1:{port}" for port in tls_ports[:3])
        stack = CacheStack()
        stack.configure(
            {
                "CACHE_TYPE": "RedisCacheNoExceptions",
                "CACHE_REDIS_CLUSTER": nodes,
                "CACHE_OPTIONS": certificates.client_options(),
                "CACHE_KEY_PREFIX": "tlsc",
            }
        )
        for n in range(50):  # over every master's slots
            assert stack.set(f"k{n}", n) is True
        assert all(stack.get(f"k{n}") == n for n in range(50))
        discovered = {node.port for node in stack.shared_cache.cache.client.get_nodes()}  # type: ignore[attr-defined]
        assert discovered <= set(tls_ports), "every node is reached on its TLS port"
    finally:
        cluster.stop()


def test_sentinels_with_a_password_then_an_acl_user_of_their_own(
    make_redis_sentinel: Callable[..., RedisSentinelSet],
) -> None:
    sentinel = make_redis_sentinel()
    settings = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_SENTINELS": sentinel.sentinels,
        "CACHE_REDIS_SENTINEL_MASTER": sentinel.master_name,
        "CACHE_KEY_PREFIX": "s",
    }
    # A sentinel takes no CONFIG SET requirepass; its ACL's default user takes a password.
    for server in sentinel.sentinel_servers:
        server.probe().execute_command("ACL", "SETUSER", "default", "on", ">sentinel-pw")
    stack = CacheStack()
    stack.configure({**settings, "CACHE_REDIS_SENTINEL_PASSWORD": "sentinel-pw"})
    stack.set("k", 1)
    assert stack.get("k") == 1
    refused = CacheStack()
    refused.configure(settings)  # without the sentinels' password, no master is found
    started = time.monotonic()
    with pytest.raises(RedisCacheError):
        refused.shared_cache.cache.set("k", 2)
    # One attempt per sentinel: redis-py's default retries held this call 11 s.
    assert time.monotonic() - started < 3
    # Then a user of their own, with the default user switched off.
    for server in sentinel.sentinel_servers:
        with server.client(username="default", password="sentinel-pw") as admin:
            admin.execute_command("ACL", "SETUSER", "watcher", "on", ">watch-pw", "+@all")
            admin.execute_command("ACL", "SETUSER", "default", "off")
    watched = CacheStack()
    watched.configure(
        {
            **settings,
            "CACHE_REDIS_SENTINEL_USERNAME": "watcher",
            "CACHE_REDIS_SENTINEL_PASSWORD": "watch-pw",
        }
    )
    watched.set("k", 3)
    assert watched.get("k") == 3
