"""The options models of the Redis backends, and the grammar of the addresses they accept.

Plain pydantic on :mod:`stratacache.options`: this module imports neither redis nor the
backends, which point their ``options_model`` at these classes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator

from stratacache.options import option
from stratacache_plugins._options import PluginOptions

__all__ = ["REDIS_SCHEMES", "RedisCacheAtomicOptions", "RedisCacheOptions", "check_redis_url"]

REDIS_SCHEMES = ("redis", "rediss", "unix")
"""The URL schemes redis-py connects with: TCP, TLS and a Unix socket."""

_SECONDS = "a number of seconds > 0"


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
    elif database and not database.isdigit():
        raise ValueError(
            f"the URL's path {parts.path!r} is not a database number;"
            " write e.g. redis://localhost:6379/0"
        )


class RedisCacheOptions(PluginOptions):
    """The options of RedisCache and RedisCacheNoExceptions: where the server is."""

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
        accepts=_SECONDS,
        description="Seconds to wait for a connection to Redis before giving up.",
        gt=0,
    )
    read_timeout: float = option(
        1.0,
        key="REDIS_READ_TIMEOUT",
        accepts=_SECONDS,
        description="Seconds to wait for a Redis reply before giving up.",
        gt=0,
    )

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
        return value


class RedisCacheAtomicOptions(RedisCacheOptions):
    """The options of RedisCacheAtomic: the server's, and how callers coordinate."""

    lock_timeout: float = option(
        30.0,
        key="ATOMIC_LOCK_TIMEOUT",
        accepts=_SECONDS,
        description="Life of an at_most_once lock: a holder that dies loses it after this.",
        gt=0,
    )
    lock_wait: float = option(
        35.0,
        key="ATOMIC_WAIT",
        accepts=_SECONDS,
        description="Longest wait of an at_most_once caller for another's result.",
        gt=0,
    )
    atomic_retries: int = option(
        5,
        key="ATOMIC_RETRIES",
        accepts="a whole number >= 1",
        description="Attempts of an at_least_once write whose watched key changed.",
        ge=1,
    )
