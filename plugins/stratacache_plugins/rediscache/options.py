"""The options models of the Redis backends, and the grammar of the addresses they accept.

Plain pydantic on :mod:`stratacache.options`: this module imports neither redis nor the
backends, which point their ``options_model`` at these classes.
"""

from __future__ import annotations

from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from stratacache.options import option
from stratacache_plugins._options import PluginOptions
from stratacache_plugins.rediscache.topology import (
    TopologyError,
    build_topology,
    check_host_name,
    list_value,
    node_texts,
)

__all__ = [
    "MAX_LOCK_SECONDS",
    "MAX_SOCKET_TIMEOUT",
    "REDIS_SCHEMES",
    "RedisCacheAtomicOptions",
    "RedisCacheNoExceptionsOptions",
    "RedisCacheOptions",
    "check_host_name",
    "check_redis_url",
]

REDIS_SCHEMES = ("redis", "rediss", "unix")
"""The URL schemes redis-py connects with: TCP, TLS and a Unix socket."""

MAX_SOCKET_TIMEOUT = 3600.0
"""The longest connect or read timeout, in seconds (1 hour): a cache call must not hang."""
MAX_LOCK_SECONDS = 86400.0
"""The longest ``at_most_once`` lock life and wait, in seconds (1 day)."""

_SOCKET_SECONDS = f"a number of seconds > 0, at most {MAX_SOCKET_TIMEOUT:.0f} (1 hour)"
_LOCK_SECONDS = f"a number of seconds > 0, at most {MAX_LOCK_SECONDS:.0f} (1 day)"


def check_redis_url(value: str) -> None:
    """Check that ``value`` is a Redis URL redis-py can connect to.

    Raises:
        ValueError: What is wrong with the URL, and an example of a right one.
    """
    if "://" not in value:
        raise ValueError(
            "not a URL (no scheme); write redis://host:port/db, e.g. redis://localhost:6379/0"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (parsing the port validates it)
    except ValueError as exc:
        raise ValueError(f"malformed URL ({exc})") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"unsupported URL scheme {parts.scheme!r}; use redis://host:port/db,"
            " rediss:// (TLS) or unix:///path/to/socket"
        )
    database = parts.path.strip("/")
    if parts.scheme == "unix":
        if not database:
            raise ValueError("a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock")
    elif not parts.hostname:
        raise ValueError("the URL has no host name, e.g. redis://localhost:6379/0")
    else:
        check_host_name(parts.hostname)
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ValueError(
            f"the URL's path {parts.path!r} is not a database number;"
            " write e.g. redis://localhost:6379/0"
        )


class RedisCacheOptions(PluginOptions):
    """The options of RedisCache: where the server is, and how long to wait for it."""

    host: str = option(
        "localhost",
        key="REDIS_HOST",
        accepts="a host name, or a redis://, rediss:// or unix:// URL",
        description="Redis host, or a full Redis URL.",
        min_length=1,
    )
    port: int = option(
        6379,
        key="REDIS_PORT",
        accepts="a port number from 1 to 65535",
        description="Redis port (with a bare host name).",
        ge=1,
        le=65535,
    )
    db: int = option(
        0, key="REDIS_DB", accepts="a database number >= 0", description="Redis database.", ge=0
    )
    password: SecretStr | None = option(
        None, key="REDIS_PASSWORD", accepts="a string (kept secret)", description="Redis password."
    )
    url: str | None = option(
        None,
        key="REDIS_URL",
        accepts="a redis://, rediss:// or unix:// URL",
        description="Redis URL; takes precedence over host, port and database.",
    )
    connect_timeout: float = option(
        0.5,
        key="REDIS_CONNECT_TIMEOUT",
        accepts=_SOCKET_SECONDS,
        description="Seconds to wait for a connection to Redis, the host name's lookup included.",
        gt=0,
        le=MAX_SOCKET_TIMEOUT,
        allow_inf_nan=False,
    )
    read_timeout: float = option(
        1.0,
        key="REDIS_READ_TIMEOUT",
        accepts=_SOCKET_SECONDS,
        description="Seconds to wait for a Redis reply before giving up.",
        gt=0,
        le=MAX_SOCKET_TIMEOUT,
        allow_inf_nan=False,
    )

    username: str | None = option(
        None,
        key="REDIS_USERNAME",
        accepts="an ACL user name",
        description="Redis ACL user name (Redis 6+), with the password; for every node.",
        min_length=1,
    )
    cluster: list[str] | None = option(
        None,
        key="REDIS_CLUSTER",
        accepts="startup nodes, host:port or redis:// / rediss:// URLs: comma-separated, or a"
        " JSON list",
        description="Redis Cluster startup nodes; the tier is then the cluster.",
    )
    sentinels: list[str] | None = option(
        None,
        key="REDIS_SENTINELS",
        accepts="sentinels as host:port: comma-separated, or a JSON list",
        description="Redis Sentinel addresses; the tier is then the master they monitor.",
    )
    sentinel_master: str | None = option(
        None,
        key="REDIS_SENTINEL_MASTER",
        accepts="the master's name in the sentinels' configuration",
        description="Name of the master the sentinels monitor (required with them).",
        min_length=1,
    )
    sentinel_username: str | None = option(
        None,
        key="REDIS_SENTINEL_USERNAME",
        accepts="an ACL user name",
        description="ACL user name for the sentinels themselves.",
        min_length=1,
    )
    sentinel_password: SecretStr | None = option(
        None,
        key="REDIS_SENTINEL_PASSWORD",
        accepts="a string (kept secret)",
        description="Password of the sentinels themselves (the master's is the password).",
    )
    read_from_replicas: bool = option(
        False,
        key="REDIS_READ_FROM_REPLICAS",
        accepts="true or false",
        description="Cluster only: reads may go to replicas. Off: replicas lag, and a read"
        " there can miss an invalidation.",
    )
    invalidation: Literal["auto", "on", "off"] = option(
        "auto",
        key="INVALIDATION",
        accepts="auto, on or off",
        description="Coherent local tiers: announce every change on a channel, and drop other"
        " instances' changes from the in-process tiers above (auto: when there are some).",
    )

    @field_validator("cluster", mode="before")
    @classmethod
    def _cluster_nodes(cls, value: Any) -> Any:
        if value is None:
            return None
        return node_texts(value, default_port=6379, urls=True, what="cluster nodes")

    @field_validator("sentinels", mode="before")
    @classmethod
    def _sentinel_nodes(cls, value: Any) -> Any:
        if value is None:
            return None
        return node_texts(list_value(value), default_port=26379, urls=False, what="sentinels")

    @model_validator(mode="after")
    def _one_topology(self) -> Self:
        given = self.model_fields_set
        password = self.sentinel_password
        try:
            build_topology(
                url="",
                url_given="url" in given and bool(self.url),
                host_given="host" in given,
                db=self.db,
                cluster=self.cluster,
                sentinels=self.sentinels,
                master=self.sentinel_master,
                sentinel_username=self.sentinel_username,
                sentinel_password=password.get_secret_value() if password else None,
                read_from_replicas=self.read_from_replicas,
            )
        except TopologyError as exc:
            error = PydanticCustomError("topology", exc.text)
            detail = InitErrorDetails(type=error, loc=(exc.option,), input=exc.value)
            raise ValidationError.from_exception_data(type(self).__name__, [detail]) from None
        return self

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if "://" in value:
            check_redis_url(value)
        elif any(c in value for c in "/ @?#"):
            raise ValueError("not a host name; give a bare host name or a redis:// URL")
        elif ":" in value:
            raise ValueError(
                "not a host name; give the port apart (CACHE_REDIS_PORT, or port in a tier"
                " spec), or the whole address as a URL (redis://host:6379/0, an IPv6 address"
                " in brackets: redis://[::1]:6379/0)"
            )
        else:
            check_host_name(value)
        return value


class RedisCacheNoExceptionsOptions(RedisCacheOptions):
    """The options of RedisCacheNoExceptions: the server's, and how it backs off.

    Neither has a flat key of its own: ``CACHE_OPTIONS`` or a tier spec sets them.
    """

    retry_interval: float = option(
        0.5,
        key=None,
        accepts=f"a number of seconds from 0 (no back-off) to {MAX_SOCKET_TIMEOUT:.0f} (1 hour)",
        description="Seconds to skip Redis after a failure, before probing it again.",
        ge=0,
        le=MAX_SOCKET_TIMEOUT,
        allow_inf_nan=False,
    )
    log_interval: float = option(
        30.0,
        key=None,
        accepts=f"a number of seconds from 0 to {MAX_LOCK_SECONDS:.0f} (1 day)",
        description="Least seconds between two log lines about one outage.",
        ge=0,
        le=MAX_LOCK_SECONDS,
        allow_inf_nan=False,
    )


class RedisCacheAtomicOptions(RedisCacheNoExceptionsOptions):
    """The options of RedisCacheAtomic: the server's, and how callers coordinate."""

    lock_timeout: float = option(
        30.0,
        key="ATOMIC_LOCK_TIMEOUT",
        accepts=_LOCK_SECONDS,
        description="Life of an at_most_once lock: a holder that dies loses it after this.",
        gt=0,
        le=MAX_LOCK_SECONDS,
        allow_inf_nan=False,
    )
    lock_wait: float = option(
        35.0,
        key="ATOMIC_WAIT",
        accepts=_LOCK_SECONDS,
        description="Longest wait of an at_most_once caller for another's result.",
        gt=0,
        le=MAX_LOCK_SECONDS,
        allow_inf_nan=False,
    )
    outage_after: float = option(
        3.0,
        key="ATOMIC_OUTAGE_AFTER",
        accepts=_LOCK_SECONDS,
        description="Seconds without an answer to a lock request before at_most_once"
        " callers count Redis as down and compute; a slower reply is waited for.",
        gt=0,
        le=MAX_LOCK_SECONDS,
        allow_inf_nan=False,
    )
    atomic_retries: int = option(
        5,
        key="ATOMIC_RETRIES",
        accepts="a whole number >= 1, at most 1000",
        description="Attempts of an at_least_once write whose watched key changed.",
        ge=1,
        le=1000,
    )
