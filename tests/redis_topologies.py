"""A real Redis Cluster for the tests: 3 masters and 3 replicas on free loopback ports.

Every node is a :class:`~tests.redis_server.RedisServer` started with cluster options; the
cluster is created by ``redis-cli --cluster create``, then checked node by node. Every wait has a
deadline and fails naming what is still wrong. The Sentinel set is in ``tests.redis_sentinel``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode as PyClusterNode

from .redis_server import REPLICATION_OPTIONS, RedisServer, free_ports, stop_all, wait_until

SLOTS = 16384
CLI_HINT = (
    "redis-cli is not installed, and the Redis Cluster tests need it (`redis-cli --cluster"
    " create`): it ships with redis-server, `apt-get install redis-tools`."
)


def redis_cli_binary() -> str:
    """Return the path of redis-cli, or fail the test (never skip) when it is missing."""
    path = shutil.which("redis-cli")
    if path is None:
        pytest.fail(CLI_HINT)
    return path


def cluster_info(server: RedisServer) -> dict[str, str]:
    """``CLUSTER INFO`` of ``server``, as ``field: value`` strings."""
    with server.probe() as client:
        text = str(client.execute_command("CLUSTER", "INFO"))
    fields = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: value.strip() for name, value in fields}


def replication_info(server: RedisServer) -> dict[str, object]:
    """``INFO replication`` of ``server`` (``role``, ``master_link_status``, ...)."""
    with server.probe() as client:
        return dict(client.info("replication"))


@dataclass(frozen=True)
class NodeView:
    """One line of ``CLUSTER NODES``: how one node sees one node."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: frozenset[int]
    open_slots: tuple[str, ...]
    """Slots being migrated or imported, as printed (``[42->-id]``, ``[42-<-id]``)."""

    @property
    def role(self) -> str:
        """``"master"`` or ``"replica"``."""
        return "master" if "master" in self.flags else "replica"

    @classmethod
    def parse(cls, line: str) -> NodeView:
        """Parse ``<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slots>``."""
        fields = line.split()
        address = fields[1].split("@")[0]
        slots: set[int] = set()
        open_slots = []
        for item in fields[8:]:
            if item.startswith("["):
                open_slots.append(item)
            else:
                first, _, last = item.partition("-")
                slots.update(range(int(first), int(last or first) + 1))
        return cls(
            node_id=fields[0],
            port=int(address.rsplit(":", 1)[1]),
            flags=frozenset(fields[2].split(",")),
            master_id=None if fields[3] == "-" else fields[3],
            slots=frozenset(slots),
            open_slots=tuple(open_slots),
        )


class ClusterNode(RedisServer):
    """One cluster node: a :class:`RedisServer` with cluster options and its own bus port."""

    def __init__(self, directory: Path, port: int, bus_port: int, node_timeout_ms: int) -> None:
        super().__init__(directory, port)
        self.bus_port = bus_port
        """The cluster bus port (``--cluster-port``), so ``port + 10000`` need not be free."""
        self.options = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(directory / f"nodes-{self.port}.conf"),
            "--cluster-port",
            str(self.bus_port),
            "--cluster-node-timeout",
            str(node_timeout_ms),
            *REPLICATION_OPTIONS,
        ]
        self._node_id: str | None = None

    def __repr__(self) -> str:
        return f"<ClusterNode {self.address} {self._node_id or '?'}>"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def node_id(self) -> str:
        """The cluster node id (``CLUSTER MYID``); it survives restarts (``nodes-PORT.conf``)."""
        if self._node_id is None:
            with self.probe() as client:
                self._node_id = str(client.execute_command("CLUSTER", "MYID"))
        return self._node_id

    @property
    def role(self) -> str:
        """``"master"`` or ``"replica"``, as the running node itself says (``INFO``)."""
        return "master" if replication_info(self)["role"] == "master" else "replica"

    def view(self) -> list[NodeView]:
        """This node's ``CLUSTER NODES``."""
        with self.probe() as client:
            text = str(client.execute_command("CLUSTER", "NODES"))
        return [NodeView.parse(line) for line in text.splitlines() if line.strip()]


class RedisClusterNodes:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on 127.0.0.1.

    Nodes are :class:`ClusterNode` objects; roles change with failovers, so ask
    :attr:`masters`, :meth:`master_for_slot` or :meth:`replica_of` rather than keeping indexes.
    """

    def __init__(
        self, directory: Path, *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000
    ) -> None:
        self.directory = directory
        self.expected_masters = masters
        self.expected_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        count = masters * (1 + replicas)
        ports = free_ports(2 * count)
        self.nodes = [
            ClusterNode(directory / f"node{i}", ports[i], ports[count + i], node_timeout_ms)
            for i in range(count)
        ]
        self.start_seconds: float | None = None
        """How long :meth:`start` took, processes to a healthy cluster."""

    @property
    def startup_nodes(self) -> str:
        """``127.0.0.1:P1,127.0.0.1:P2,...``: every node, the form the cache settings take."""
        return ",".join(node.address for node in self.nodes)

    def client(self, **options: object) -> redis.RedisCluster:
        """A ``redis.RedisCluster`` that knows every node (it follows MOVED and ASK)."""
        nodes = [PyClusterNode("127.0.0.1", node.port) for node in self.nodes]  # type: ignore[no-untyped-call]
        return redis.RedisCluster(startup_nodes=nodes, **options)  # type: ignore[arg-type]

    def start(self) -> RedisClusterNodes:
        """Start the nodes, create the cluster with redis-cli and wait until it is healthy."""
        began = time.monotonic()
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_started()
        command = [redis_cli_binary(), "--cluster", "create"]
        command += [node.address for node in self.nodes]
        command += ["--cluster-replicas", str(self.expected_replicas), "--cluster-yes"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0 or "[ERR]" in result.stdout:
            self.stop()
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}"
            )
        self.wait_healthy(timeout=20, repair=False)
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every node (SIGKILL after 5 s)."""
        stop_all(self.nodes)

    def node(self, port: int) -> ClusterNode:
        """The node on ``port``."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"no node on port {port} in {self.nodes}")

    def view(self) -> list[NodeView]:
        """``CLUSTER NODES`` as the first live node sees it (all agree once healthy)."""
        for node in self.nodes:
            if node.running:
                try:
                    return node.view()
                except redis.RedisError:
                    continue
        raise RuntimeError("no cluster node answers")

    @property
    def masters(self) -> list[ClusterNode]:
        """The masters that serve slots, by the cluster's view, in slot order."""
        lines = sorted((line for line in self.view() if line.slots), key=lambda v: min(v.slots))
        return [self.node(line.port) for line in lines if line.role == "master"]

    @property
    def replicas(self) -> list[ClusterNode]:
        """The replicas, by the cluster's view."""
        return [self.node(line.port) for line in self.view() if line.role == "replica"]

    def master_for_slot(self, slot: int) -> ClusterNode:
        """The master that owns ``slot`` now."""
        for line in self.view():
            if slot in line.slots:
                return self.node(line.port)
        raise LookupError(f"slot {slot} has no master")

    def slots_of(self, master: ClusterNode) -> frozenset[int]:
        """The slots ``master`` owns now."""
        return next((v.slots for v in self.view() if v.node_id == master.node_id), frozenset())

    def keyslot(self, key: str) -> int:
        """``CLUSTER KEYSLOT key``."""
        with self.nodes[0].probe() as client:
            return int(client.execute_command("CLUSTER", "KEYSLOT", key))

    def master_for_key(self, key: str) -> ClusterNode:
        """The master that owns the slot of ``key`` now."""
        return self.master_for_slot(self.keyslot(key))

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        """A replica of ``master``."""
        for line in self.view():
            if line.master_id == master.node_id and line.role == "replica":
                return self.node(line.port)
        raise LookupError(f"{master} has no replica")

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL ``node``, as a crash would."""
        node.kill()

    def restart(self, node: ClusterNode) -> None:
        """Start ``node`` again on its port; it rejoins with its ``nodes-PORT.conf`` (no data)."""
        node.stop()
        node.start()

    def wait_promoted(self, replica: ClusterNode, timeout: float = 15) -> float:
        """Wait until ``replica`` is a master every live node knows as one; return the seconds."""

        def promoted() -> str | None:
            if replica.role != "master":
                return f"{replica} is still a replica"
            for node in self.nodes:
                if node.running and node is not replica:
                    line = next(v for v in node.view() if v.node_id == replica.node_id)
                    if line.role != "master":
                        return f"{node} still sees {replica} as a replica"
            return None

        return wait_until(promoted, f"{replica} promoted", timeout)

    def failover(self, replica: ClusterNode, timeout: float = 15) -> float:
        """``CLUSTER FAILOVER`` on ``replica``; wait for the promotion, return the seconds."""
        with replica.probe() as client:
            client.execute_command("CLUSTER", "FAILOVER")
        return self.wait_promoted(replica, timeout)

    def wait_healthy(self, timeout: float = 30, *, repair: bool = True) -> float:
        """Wait until the cluster is whole; return the seconds it took.

        With ``repair``, first resume paused nodes, restart killed ones and close slots a
        migration left open (``CLUSTER SETSLOT slot STABLE``), so a test that broke the
        cluster leaves it usable. Healthy means: every node runs, says ``cluster_state:ok``
        with all slots assigned, and sees the same masters (``masters`` of them) and replicas
        (``replicas`` each, link up), none failing, no slot open.
        """
        began = time.monotonic()
        if repair:
            for node in self.nodes:
                if node.running:
                    node.resume()
                else:
                    self.restart(node)
            for node in self.nodes:
                mine = next((v for v in node.view() if "myself" in v.flags), None)
                for item in mine.open_slots if mine else ():
                    slot = item.strip("[]").split("-")[0]
                    with node.probe() as client:
                        client.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        wait_until(self._unhealthy, "the cluster is healthy", timeout)
        return time.monotonic() - began

    def _unhealthy(self) -> str | None:
        """Why the cluster is not healthy, or None."""
        views = set()
        for node in self.nodes:
            problem = self._node_problem(node)
            if problem is not None:
                return problem
            views.add(frozenset((v.node_id, v.role, v.master_id, v.slots) for v in node.view()))
        if len(views) > 1:
            return "the nodes do not agree yet on roles and slots"
        view = views.pop()
        masters = [master_id for master_id, role, _, slots in view if role == "master" and slots]
        if len(masters) != self.expected_masters:
            return f"{len(masters)} masters with slots, not {self.expected_masters}"
        for master_id in masters:
            count = sum(1 for line in view if line[2] == master_id)
            if count != self.expected_replicas:
                return f"master {master_id} has {count} replicas"
        return None

    def _node_problem(self, node: ClusterNode) -> str | None:
        """Why ``node`` is not healthy (down, cluster not ok, failing peers...), or None."""
        if not node.running:
            return f"{node} is not running"
        info = cluster_info(node)
        if info["cluster_state"] != "ok" or info["cluster_slots_ok"] != str(SLOTS):
            return f"{node}: {info['cluster_state']}, {info['cluster_slots_ok']} slots ok"
        for line in node.view():
            bad = line.flags & {"fail", "fail?", "handshake", "noaddr"}
            if bad or line.open_slots:
                return f"{node} sees {line.port}: {sorted(bad)} {line.open_slots}"
        replication = replication_info(node)
        if replication["role"] != "master" and replication["master_link_status"] != "up":
            return f"{node}: master link {replication['master_link_status']}"
        return None

    def move_slot(
        self, slot: int, to_master: ClusterNode, *, batch: int = 10, pause: float = 0.0
    ) -> int:
        """Migrate ``slot`` live to ``to_master``, as ``redis-cli --cluster reshard`` does.

        ``SETSLOT IMPORTING`` on the target, ``MIGRATING`` on the source, ``MIGRATE`` of the
        slot's keys ``batch`` at a time (sleeping ``pause`` between batches, so clients meet
        ``ASK``), then ``SETSLOT NODE`` on the target, the source and the other masters.
        Clients keep working throughout. Return how many keys moved.
        """
        source = self.master_for_slot(slot)
        if source is to_master:
            return 0
        with source.probe() as src, to_master.probe() as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", to_master.node_id)
            moved = 0
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                src.execute_command(
                    "MIGRATE", "127.0.0.1", to_master.port, "", 0, 5000, "KEYS", *keys
                )
                moved += len(keys)
                time.sleep(pause)
            for master in [
                to_master,
                source,
                *(m for m in self.masters if m not in (source, to_master)),
            ]:
                with master.probe() as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to_master.node_id)

        def moved_everywhere() -> str | None:
            for node in self.nodes:
                owner = next((v.port for v in node.view() if slot in v.slots), None)
                if owner != to_master.port:
                    return f"{node} says slot {slot} is on {owner}"
            return None

        wait_until(moved_everywhere, f"every node knows slot {slot} moved", 10)
        return moved

    def flush(self) -> None:
        """``FLUSHALL`` on every master, and wait (1 s at most) for the replicas to apply it."""
        for master in self.masters:
            with master.client(socket_timeout=5) as client:
                client.flushall()
                client.execute_command("WAIT", self.expected_replicas, 1000)
