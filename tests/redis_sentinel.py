"""A real Redis Sentinel set for the tests: a master, a replica and 3 sentinels.

The data servers are :class:`~tests.redis_server.RedisServer` objects; the sentinels are the
same binary run as ``redis-server sentinel.conf --sentinel``. Each sentinel's file names the
others (``known-sentinel``) so they know each other at once instead of after the 2 s hello
period. Every wait has a deadline and fails naming what is still wrong.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import redis

from .redis_server import (
    REPLICATION_OPTIONS,
    RedisServer,
    free_ports,
    redis_server_binary,
    stop_all,
    wait_until,
)

HOST = "127.0.0.1"
PEER_FLAGS = {"sentinel", "master_down"}


def replication_port(server: RedisServer) -> int | None:
    """The port of the master ``server`` replicates, or None for a master."""
    with server.probe() as client:
        port = client.info("replication").get("master_port")
    return None if port is None else int(port)


class SentinelServer(RedisServer):
    """One sentinel: ``redis-server DIR/sentinel.conf --sentinel`` (it rewrites that file)."""

    def __init__(self, directory: Path, port: int) -> None:
        super().__init__(directory, port)
        self.myid = secrets.token_hex(20)
        """The sentinel's run id, fixed in its file so that its peers can name it."""
        self.config = directory / "sentinel.conf"

    def __repr__(self) -> str:
        return f"<SentinelServer {HOST}:{self.port}>"

    def command(self) -> list[str]:
        """``redis-server sentinel.conf --sentinel``."""
        return [redis_server_binary(), str(self.config), "--sentinel"]


class RedisSentinelSet:
    """A master, one replica and three sentinels (quorum 2) monitoring :attr:`master_name`.

    Roles change with failovers: :attr:`master` and :attr:`replica` ask the sentinels.
    """

    def __init__(
        self,
        directory: Path,
        *,
        master_name: str = "mymaster",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.master_name = master_name
        """The name the sentinels monitor the master under."""
        ports = free_ports(5)
        self.servers = [RedisServer(directory / f"server{i}", ports[i]) for i in range(2)]
        """The data servers, first started as master and replica."""
        self.sentinel_servers = [
            SentinelServer(directory / f"sentinel{i}", ports[2 + i]) for i in range(3)
        ]
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.start_seconds: float | None = None
        """How long :meth:`start` took, processes to a healthy set."""

    @property
    def sentinels(self) -> str:
        """``127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3``, the form the cache settings take."""
        return ",".join(f"{HOST}:{port}" for _, port in self.sentinel_addresses)

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``[(host, port), ...]``, the form ``redis.Sentinel`` takes."""
        return [(HOST, sentinel.port) for sentinel in self.sentinel_servers]

    def client(self, **options: object) -> redis.Sentinel:
        """A ``redis.Sentinel`` that knows the three sentinels."""
        return redis.Sentinel(self.sentinel_addresses, **options)  # type: ignore[no-untyped-call]

    def master_for(self, **options: object) -> redis.Redis:
        """``redis.Sentinel(...).master_for(master_name, **options)``: follows failovers."""
        sentinel = self.client(socket_timeout=1)
        return sentinel.master_for(self.master_name, **options)  # type: ignore[no-any-return,no-untyped-call]

    def replica_for(self, **options: object) -> redis.Redis:
        """``redis.Sentinel(...).slave_for(master_name, **options)``."""
        sentinel = self.client(socket_timeout=1)
        return sentinel.slave_for(self.master_name, **options)  # type: ignore[no-any-return,no-untyped-call]

    def _write_config(self, sentinel: SentinelServer) -> None:
        name = self.master_name
        lines = [
            f"port {sentinel.port}",
            f"bind {HOST}",
            f"dir {sentinel.directory}",
            "loglevel warning",
            f"sentinel myid {sentinel.myid}",
            f"sentinel monitor {name} {HOST} {self.servers[0].port} 2",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        lines += [
            f"sentinel known-sentinel {name} {HOST} {peer.port} {peer.myid}"
            for peer in self.sentinel_servers
            if peer is not sentinel
        ]
        sentinel.config.write_text("\n".join(lines) + "\n")

    def start(self) -> RedisSentinelSet:
        """Start the master and its replica, then the sentinels; wait until all is healthy."""
        began = time.monotonic()
        master, replica = self.servers
        self._start(master, None)
        self._start(replica, master)
        for sentinel in self.sentinel_servers:
            self._write_config(sentinel)
            sentinel.launch()
        for sentinel in self.sentinel_servers:
            sentinel.wait_started()
        self.wait_healthy(timeout=20)
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop the sentinels, then the servers (SIGKILL after 5 s)."""
        stop_all(self.sentinel_servers)
        stop_all(self.servers)

    @staticmethod
    def _start(server: RedisServer, master: RedisServer | None) -> None:
        """Start ``server`` as a master, or as a replica of ``master``."""
        server.options = list(REPLICATION_OPTIONS)
        if master is not None:
            server.options += ["--replicaof", HOST, str(master.port)]
        server.start()

    def server(self, port: int) -> RedisServer:
        """The data server on ``port``."""
        for server in self.servers:
            if server.port == port:
                return server
        raise LookupError(f"no data server on port {port} in {self.servers}")

    def master_address(self) -> tuple[str, int]:
        """The master's ``(host, port)``, as the first sentinel that answers says."""
        errors = []
        for sentinel in self.sentinel_servers:
            try:
                with sentinel.probe() as client:
                    host, port = client.sentinel_get_master_addr_by_name(self.master_name)
                return str(host), int(port)
            except (redis.RedisError, TypeError) as error:
                errors.append(f"{sentinel}: {error!r}")
        raise RuntimeError(f"no sentinel knows {self.master_name}: {errors}")

    @property
    def master(self) -> RedisServer:
        """The data server the sentinels name as master."""
        return self.server(self.master_address()[1])

    @property
    def replica(self) -> RedisServer:
        """The other data server."""
        master = self.master
        return next(server for server in self.servers if server is not master)

    def kill_master(self) -> RedisServer:
        """SIGKILL the master, as a crash would; return it (see :meth:`wait_new_master`)."""
        master = self.master
        master.kill()
        return master

    def wait_new_master(self, old: RedisServer, timeout: float = 30) -> float:
        """Wait until every sentinel names a master other than ``old`` and it takes writes.

        Return the seconds it took.
        """

        def moved() -> str | None:
            for sentinel in self.sentinel_servers:
                with sentinel.probe() as client:
                    _, port = client.sentinel_get_master_addr_by_name(self.master_name)
                if int(port) == old.port:
                    return f"{sentinel} still names {old.port}"
            with self.server(int(port)).probe() as client:
                client.set("stratacache-topology:probe", 1)
                client.delete("stratacache-topology:probe")
            return None

        return wait_until(moved, f"a new master for {self.master_name}", timeout)

    def failover(self, timeout: float = 30) -> float:
        """``SENTINEL FAILOVER``; wait for the new master; return the seconds it took.

        The old master is then made a replica of the new one and its clients are
        disconnected, as the sentinels would do, but at once rather than some 10 s later.
        """
        old = self.master
        with self.sentinel_servers[0].probe() as client:
            client.sentinel_failover(self.master_name)
        seconds = self.wait_new_master(old, timeout)
        self._demote(old, self.master)
        return seconds

    @staticmethod
    def _demote(server: RedisServer, master: RedisServer) -> None:
        """``REPLICAOF master``, then disconnect the clients (as a sentinel does)."""
        with server.probe() as client:
            client.replicaof(HOST, master.port)
            client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    def wait_healthy(self, timeout: float = 30) -> float:
        """Make the set whole again and wait until it is; return the seconds it took.

        Resume paused processes, restart dead sentinels, wait for a live master (a failover,
        if a test killed it), then restart or re-point the other server as its replica.
        Healthy means: every sentinel names that master, sees it up with the replica and the
        two other sentinels, none down; the replica's link to it is up.
        """
        began = time.monotonic()
        for process in [*self.sentinel_servers, *self.servers]:
            if process.running:
                process.resume()
        for sentinel in self.sentinel_servers:
            if not sentinel.running:
                sentinel.start()
        if not any(server.running for server in self.servers):
            self._start(self.master, None)
        wait_until(self._master_problem, f"a live master for {self.master_name}", timeout)
        master = self.master
        for server in self.servers:
            if server is master:
                continue
            if not server.running:
                self._start(server, master)
            elif replication_port(server) != master.port:
                self._demote(server, master)
        wait_until(self._unhealthy, "the sentinel set is healthy", timeout)
        return time.monotonic() - began

    def _master_problem(self) -> str | None:
        """Why the sentinels' master is not a live master, or None."""
        master = self.master
        if not master.running:
            return f"the master {master.port} is down"
        with master.probe() as client:
            role = client.info("replication")["role"]
        return None if role == "master" else f"the master {master.port} says {role}"

    def _unhealthy(self) -> str | None:
        """Why the set is not healthy, or None."""
        master, replica = self.master, self.replica
        for sentinel in self.sentinel_servers:
            with sentinel.probe() as client:
                state = client.sentinel_master(self.master_name)
                peers = client.sentinel_sentinels(self.master_name)
                replicas = client.sentinel_slaves(self.master_name)
            if (state["ip"], state["port"]) != (HOST, master.port):
                return f"{sentinel} names {state['ip']}:{state['port']}"
            if state["flags"] != "master":
                return f"{sentinel} sees the master as {state['flags']}"
            # master_down is a peer's vote about an old master: it lapses after 5 s, harmless.
            live = [p["port"] for p in peers if set(p["flags"].split(",")) <= PEER_FLAGS]
            others = [other.port for other in self.sentinel_servers if other is not sentinel]
            if sorted(live) != sorted(others):
                return f"{sentinel} sees sentinels {[(p['port'], p['flags']) for p in peers]}"
            if not any(r["port"] == replica.port and r["flags"] == "slave" for r in replicas):
                return f"{sentinel} sees replicas {[(r['port'], r['flags']) for r in replicas]}"
        with replica.probe() as client:
            info = client.info("replication")
        if info.get("master_port") != master.port or info.get("master_link_status") != "up":
            return f"the replica {replica.port}: {info.get('master_link_status')} to {master.port}"
        return None

    def flush(self) -> None:
        """``FLUSHALL`` on the master, and wait (1 s at most) for the replica to apply it."""
        with self.master.client(socket_timeout=5) as client:
            client.flushall()
            client.execute_command("WAIT", 1, 1000)
