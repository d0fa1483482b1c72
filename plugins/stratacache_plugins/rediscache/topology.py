"""Where the shared tier's Redis is: one server, a Sentinel-monitored master, or a Cluster.

Plain Python, no redis import: the options model (:mod:`.options`) parses the settings into
a :class:`Topology`, and :mod:`.connection` builds the client for it. The addresses accept
the vocabulary Flask-Caching's users know:

* ``CACHE_REDIS_CLUSTER``: the cluster's startup nodes, ``host:port`` or ``redis://`` /
  ``rediss://`` URLs (TLS), comma-separated or a JSON list;
* ``CACHE_REDIS_SENTINELS``: the sentinels, ``host:port`` (or ``(host, port)`` pairs in
  code, as Flask-Caching takes them), with ``CACHE_REDIS_SENTINEL_MASTER``, the name of the
  master they monitor.

An IPv6 host is written in brackets: ``[::1]:7000``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "Node",
    "Topology",
    "TopologyError",
    "build_topology",
    "check_host_name",
    "list_value",
    "node_texts",
    "parse_node",
    "parse_nodes",
]

Kind = Literal["server", "cluster", "sentinel"]

MAX_HOST_NAME, MAX_LABEL = 253, 63  # DNS: a whole name, one label between dots


def check_host_name(name: str) -> None:
    """Check that ``name`` fits DNS: at most 253 characters, labels of 1 to 63.

    An IPv6 address (it holds ``:``) is not a name and is left to the resolver.

    Raises:
        ValueError: What is too long or empty, and the limit.
    """
    if ":" in name:
        return
    bare = name.removesuffix(".")  # a fully qualified name may end with its root's dot
    if len(bare) > MAX_HOST_NAME:
        raise ValueError(
            f"the host name is {len(bare)} characters long; DNS allows at most"
            f" {MAX_HOST_NAME}: give the server's real name or address"
        )
    for label in bare.split("."):
        if not label:
            raise ValueError(
                "the host name has an empty label (two dots in a row, or a leading dot)"
            )
        if len(label) > MAX_LABEL:
            raise ValueError(
                f"a label of the host name ({label[:20]}...) is {len(label)} characters long;"
                f" DNS allows at most {MAX_LABEL} between two dots"
            )


def list_value(value: Any) -> Any:
    """A list setting as given: a JSON list when the text starts with ``[``, else comma-separated.

    The one rule for every list-valued key read from the environment or a ``.env`` file;
    anything that is not text (a list from code or a ``CACHE_LAYERS`` spec) is returned as
    it is.

    Raises:
        ValueError: Text that starts with ``[`` but is not a JSON list.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"starts with '[' but is not a JSON list ({exc.msg}); write a JSON list"
                ' (["host1:7000", "host2:7000"]) or comma-separated host:port items'
            ) from None
        if not isinstance(parsed, list):
            raise ValueError("starts with '[' but is not a JSON list")
        return parsed
    return [item.strip() for item in text.split(",")] if text else []


@dataclass(frozen=True)
class Node:
    """One address: a host (a name, or an IP address without brackets) and a port."""

    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_node(item: Any, *, default_port: int, urls: bool) -> Node:
    """One node from ``host:port``, ``[v6]:port``, a ``(host, port)`` pair or (``urls``) a URL.

    Raises:
        ValueError: What is wrong with the item, with an example of a right one.
    """
    if isinstance(item, list | tuple):
        if len(item) != 2 or not isinstance(item[0], str) or isinstance(item[1], bool):
            raise ValueError(f"{item!r} is not a (host, port) pair")
        return _node(item[0], str(item[1]), default_port=default_port, tls=False)
    if not isinstance(item, str) or not item.strip():
        raise ValueError(f"{item!r} is not an address; write host:port, e.g. 10.0.0.1:7000")
    text = item.strip()
    if "://" in text:
        if not urls:
            raise ValueError(f"{text!r}: give host:port here, not a URL")
        parts = urlsplit(text)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"{text!r}: use redis:// or rediss:// (TLS) node URLs")
        database = parts.path.strip("/")
        if database not in ("", "0"):
            raise ValueError(
                f"{text!r} names database {database}; a cluster has only database 0: drop it"
            )
        netloc = parts.netloc.rpartition("@")[2]
        return _split(netloc, default_port=default_port, tls=parts.scheme == "rediss")
    return _split(text, default_port=default_port, tls=False)


def _split(text: str, *, default_port: int, tls: bool) -> Node:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":") and rest:
            raise ValueError(f"{text!r}: write an IPv6 address as [::1]:7000")
        return _node(host, rest[1:] or str(default_port), default_port=default_port, tls=tls)
    if text.count(":") > 1:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:7000")
    host, _, port = text.partition(":")
    return _node(host, port or str(default_port), default_port=default_port, tls=tls)


def _node(host: str, port: str, *, default_port: int, tls: bool) -> Node:
    if not host:
        raise ValueError(f"no host in {host}:{port}; write host:port, e.g. 10.0.0.1:7000")
    check_host_name(host)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port {port!r} of {host} is not a port number from 1 to 65535")
    return Node(host, int(port), tls)


def parse_nodes(value: Any, *, default_port: int, urls: bool, what: str) -> tuple[Node, ...]:
    """Every node of a list setting (see :func:`list_value`); at least one.

    Raises:
        ValueError: The list is empty, or an item is not an address (the first one found).
    """
    items = list_value(value)
    if isinstance(items, tuple) and len(items) == 2 and isinstance(items[1], int):
        items = [items]  # one (host, port) pair, as Flask-Caching also takes it
    if not isinstance(items, list | tuple):
        raise ValueError(f"not a list of {what}")
    nodes = tuple(parse_node(item, default_port=default_port, urls=urls) for item in items)
    if not nodes:
        raise ValueError(f"the list of {what} is empty; give at least one host:port")
    return nodes


@dataclass(frozen=True)
class Topology:
    """The shape of the shared tier's Redis, and what the client needs to reach it.

    Attributes:
        kind: ``server`` (one server, by URL), ``cluster`` or ``sentinel``.
        url: The server's URL, for ``server``.
        nodes: The cluster's startup nodes, or the sentinels.
        master: The name of the master the sentinels monitor.
        sentinel_auth: The sentinels' ``(username, password)``, when they require one.
        read_from_replicas: Cluster reads may go to replicas (off by default).
    """

    kind: Kind
    url: str = ""
    nodes: tuple[Node, ...] = ()
    master: str | None = None
    sentinel_auth: tuple[str | None, str | None] = field(default=(None, None), repr=False)
    read_from_replicas: bool = False

    def first_node_url(self) -> str:
        """A URL of the first node (``rediss://`` for TLS): what redis-py's checks look at."""
        if not self.nodes:
            return self.url or "redis://localhost:6379/0"
        node = self.nodes[0]
        return f"{'rediss' if node.tls else 'redis'}://{node}/0"

    def describe(self) -> str:
        """Where the tier is, in words, without secrets (for errors, logs and ``repr``)."""
        from stratacache.masking import mask_url

        if self.kind == "server":
            return mask_url(self.url)
        nodes = ",".join(str(node) for node in self.nodes)
        scheme = "rediss" if any(node.tls for node in self.nodes) else "redis"
        if self.kind == "cluster":
            return f"Redis Cluster {scheme}://{nodes}"
        return f"Sentinel master {self.master!r} via {nodes}"


class TopologyError(ValueError):
    """Settings that contradict each other or name no reachable topology.

    Attributes:
        option: The option the problem is reported on (its field name).
        value: Its value.
        text: What is wrong and the fix.
    """

    def __init__(self, option: str, value: Any, text: str) -> None:
        super().__init__(text)
        self.option, self.value, self.text = option, value, text


def build_topology(
    *,
    url: str,
    url_given: bool,
    host_given: bool,
    db: int,
    cluster: Any = None,
    sentinels: Any = None,
    master: str | None = None,
    sentinel_username: str | None = None,
    sentinel_password: str | None = None,
    read_from_replicas: bool = False,
) -> Topology:
    """The topology the settings describe: a Cluster, a Sentinel master or one server.

    ``url`` is the single server's URL (built from the host, port and database when no URL
    was given); ``url_given`` and ``host_given`` say whether the user set them.

    Raises:
        TopologyError: The first contradiction found, on the option to change.
    """
    if cluster is not None and sentinels is not None:
        raise TopologyError(
            "sentinels",
            sentinels,
            "Cluster and Sentinel together: a tier is one of them;"
            " remove the sentinels (CACHE_REDIS_SENTINELS) or the cluster (CACHE_REDIS_CLUSTER)",
        )
    if cluster is not None:
        nodes = _nodes("cluster", cluster, default_port=6379, urls=True, what="cluster nodes")
        if url_given or host_given:
            given = "CACHE_REDIS_URL (url)" if url_given else "CACHE_REDIS_HOST (host)"
            raise TopologyError(
                "cluster",
                cluster,
                f"a cluster's nodes are its addresses, but {given} is set"
                " too: remove it, or remove the cluster setting to use that one server",
            )
        if db != 0:
            raise TopologyError(
                "db", db, "Redis Cluster has only database 0: remove CACHE_REDIS_DB (db)"
            )
        return Topology("cluster", nodes=nodes, read_from_replicas=read_from_replicas)
    if read_from_replicas:
        raise TopologyError(
            "read_from_replicas",
            True,
            "only a Redis Cluster tier reads from replicas: set"
            " CACHE_REDIS_CLUSTER, or remove this option",
        )
    if sentinels is not None:
        nodes = _nodes("sentinels", sentinels, default_port=26379, urls=False, what="sentinels")
        if not master:
            raise TopologyError(
                "sentinel_master",
                master,
                "the sentinels need the name of the master they"
                " monitor: set CACHE_REDIS_SENTINEL_MASTER (sentinel_master), e.g. mymaster",
            )
        if url_given or host_given:
            given = "CACHE_REDIS_URL (url)" if url_given else "CACHE_REDIS_HOST (host)"
            raise TopologyError(
                "sentinels",
                sentinels,
                f"the sentinels find the master, but {given} is set"
                " too: remove it, or remove the sentinels to use that one server",
            )
        auth = (sentinel_username, sentinel_password)
        return Topology("sentinel", nodes=nodes, master=master, sentinel_auth=auth)
    if master:
        raise TopologyError(
            "sentinel_master",
            master,
            "a master name without sentinels: set"
            " CACHE_REDIS_SENTINELS (sentinels), or remove the master name",
        )
    return Topology("server", url=url)


def _nodes(option: str, value: Any, **how: Any) -> tuple[Node, ...]:
    try:
        return parse_nodes(value, **how)
    except ValueError as exc:
        raise TopologyError(option, value, str(exc)) from None


def node_texts(value: Any, *, default_port: int, urls: bool, what: str) -> list[str]:
    """The nodes of a list setting as ``host:port`` texts (``rediss://`` kept for TLS).

    Raises:
        ValueError: As :func:`parse_nodes`.
    """
    nodes = parse_nodes(value, default_port=default_port, urls=urls, what=what)
    return [f"rediss://{node}" if node.tls else str(node) for node in nodes]
