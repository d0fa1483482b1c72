"""The settings model: every configuration key, its type, default and validation.

Settings come from environment variables (and a ``.env`` file in the working directory),
from keyword arguments, or from a Flask-style mapping of the same ``CACHE_*`` /
``LOCALCACHE_*`` keys. They are validated once, at start-up: every problem is reported at
once in a :class:`~stratacache.ConfigurationError`, each naming the key, the bad value and
what is accepted. The hot path never reads the environment.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from stratacache.errors import BackendNotFound, ConfigurationError, InvalidBackend
from stratacache.signing import MIN_SECRET_LENGTH

__all__ = ["CacheSettings", "Source"]

Source = Literal["argument", "mapping", "environment", ".env", "default"]
"""Where a setting's value came from, as ``stratacache config`` shows it."""

KEY_PREFIXES = ("CACHE_", "LOCALCACHE_")
MASK = "**********"
"""What a secret shows wherever settings are printed."""
REDIS_SCHEMES = ("redis", "rediss", "unix")
_BACKEND_ACCEPTS = "an installed backend name (see `stratacache backends`) or a dotted path"


def _key(alias: str, accepts: str, *default: Any, **kwargs: Any) -> Any:
    """Declare a setting: its key (the environment variable) and what it accepts."""
    return Field(*default, alias=alias, json_schema_extra={"accepts": accepts}, **kwargs)


class CacheSettings(BaseSettings):
    """The validated configuration of the cache layers.

    Read from the environment when built with no arguments; keyword arguments (by key,
    ``CACHE_TYPE=...``, or by field name, ``cache_type=...``) override the environment.
    Use :meth:`from_mapping` for a Flask-style config mapping. Instances are immutable.

    Raises:
        ConfigurationError: Listing every invalid or unknown key at once.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    # -- the shared layer -----------------------------------------------------------------
    cache_type: str = _key(
        "CACHE_TYPE", _BACKEND_ACCEPTS, "NullCache", description="Backend of the shared layer."
    )
    cache_default_timeout: int = _key(
        "CACHE_DEFAULT_TIMEOUT",
        "a whole number of seconds >= 0 (0 = never expire)",
        300,
        ge=0,
        description="Seconds an entry lives when no duration is given.",
    )
    cache_key_prefix: str = _key(
        "CACHE_KEY_PREFIX", "any string", "", description="Prefix of every shared-layer key."
    )
    cache_dir: str | None = _key(
        "CACHE_DIR",
        "a directory path",
        None,
        description="Directory of FileSystemCache (default: the user cache directory).",
    )
    cache_threshold: int = _key(
        "CACHE_THRESHOLD",
        "a whole number >= 0 (0 = no limit)",
        500,
        ge=0,
        description="Maximum entry count of a bounded shared backend (FileSystemCache).",
    )
    cache_options: Annotated[dict[str, Any], NoDecode] = _key(
        "CACHE_OPTIONS",
        'a JSON object of extra backend arguments, e.g. {"mode": 384}',
        default_factory=dict,
        description="Extra keyword arguments for the shared backend's constructor.",
    )
    cache_serializer: str = _key(
        "CACHE_SERIALIZER",
        "a registered serializer name: 'pickle' or 'json', or one a plugin adds",
        "pickle",
        description="How the shared layer turns values into bytes.",
    )
    cache_secret_key: Annotated[tuple[SecretStr, ...], NoDecode] = _key(
        "CACHE_SECRET_KEY",
        f"a secret of at least {MIN_SECRET_LENGTH} characters, or a JSON list of them"
        ' (newest first) to rotate keys, e.g. ["new-secret...", "old-secret..."]',
        default_factory=tuple,
        description="Signs every shared-layer payload (HMAC-SHA256); unsigned or wrongly"
        " signed entries are never deserialized. The first key signs, any key verifies.",
    )
    cache_redis_host: str = _key(
        "CACHE_REDIS_HOST",
        "a host name, or a redis://, rediss:// or unix:// URL",
        "localhost",
        min_length=1,
        description="Redis host, or a full Redis URL.",
    )
    cache_redis_port: int = _key(
        "CACHE_REDIS_PORT",
        "a port number from 1 to 65535",
        6379,
        ge=1,
        le=65535,
        description="Redis port (with a bare host name).",
    )
    cache_redis_db: int = _key(
        "CACHE_REDIS_DB", "a database number >= 0", 0, ge=0, description="Redis database."
    )
    cache_redis_password: SecretStr | None = _key(
        "CACHE_REDIS_PASSWORD", "a string (kept secret)", None, description="Redis password."
    )
    cache_redis_url: str | None = _key(
        "CACHE_REDIS_URL",
        "a redis://, rediss:// or unix:// URL",
        None,
        description="Redis URL; takes precedence over host, port and database.",
    )

    cache_redis_connect_timeout: float = _key(
        "CACHE_REDIS_CONNECT_TIMEOUT",
        "a number of seconds > 0",
        0.5,
        gt=0,
        description="Seconds to wait for a connection to Redis before giving up.",
    )
    cache_redis_read_timeout: float = _key(
        "CACHE_REDIS_READ_TIMEOUT",
        "a number of seconds > 0",
        1.0,
        gt=0,
        description="Seconds to wait for a Redis reply before giving up.",
    )
    cache_atomic_lock_timeout: float = _key(
        "CACHE_ATOMIC_LOCK_TIMEOUT",
        "a number of seconds > 0",
        30.0,
        gt=0,
        description="Life of an at_most_once lock: a holder that dies loses it after this.",
    )
    cache_atomic_wait: float = _key(
        "CACHE_ATOMIC_WAIT",
        "a number of seconds > 0",
        35.0,
        gt=0,
        description="Longest wait of an at_most_once caller for another's result.",
    )
    cache_atomic_retries: int = _key(
        "CACHE_ATOMIC_RETRIES",
        "a whole number >= 1",
        5,
        ge=1,
        description="Attempts of an at_least_once write whose watched key changed.",
    )

    # -- the local layers -----------------------------------------------------------------
    localcache_type: str = _key(
        "LOCALCACHE_TYPE",
        "an installed in-process backend (SimpleCache, SimpleCacheNoSerializer, NullCache)"
        " or a dotted path to one",
        "SimpleCache",
        description="Backend of the local, in-process layer.",
    )
    localcache_default_timeout: int = _key(
        "LOCALCACHE_DEFAULT_TIMEOUT",
        "a whole number of seconds >= 0 (0 = never expire)",
        300,
        ge=0,
        description="Longest life of a local copy of a shared entry.",
    )
    localcache_threshold: int = _key(
        "LOCALCACHE_THRESHOLD",
        "a whole number >= 1",
        500,
        ge=1,
        description="Maximum entry count of each local layer (least recently used go first).",
    )
    localcache_no_serializer_type: str = _key(
        "LOCALCACHE_NO_SERIALIZER_TYPE",
        "an installed in-process backend that stores references (SimpleCacheNoSerializer)",
        "SimpleCacheNoSerializer",
        description="Backend of the by-reference local layer (no_serialization=True).",
    )

    # -- monitoring -----------------------------------------------------------------------
    cache_stats: bool = _key(
        "CACHE_STATS",
        "true or false (also 1/0, yes/no, on/off)",
        True,
        examples=["false"],
        description="Count hits, misses, writes, errors and compute time in cache.stats().",
    )
    cache_prometheus: bool = _key(
        "CACHE_PROMETHEUS",
        "true or false (also 1/0, yes/no, on/off); needs pip install 'stratacache[prometheus]'",
        False,
        examples=["true"],
        description="Export cache.stats() to prometheus_client's default registry.",
    )

    _secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"cache_redis_password", "cache_secret_key"}
    )
    _url_fields: ClassVar[frozenset[str]] = frozenset({"cache_redis_url", "cache_redis_host"})
    _arguments: frozenset[str] = PrivateAttr(default=frozenset())

    def __init__(self, **values: Any) -> None:
        unknown = _unknown_keys(k for k in values if not k.startswith("_"))
        problems = unknown_key_problems(unknown)
        # The error is raised outside the except blocks, so it chains nothing: pydantic's
        # errors quote the input values, secrets included.
        try:
            super().__init__(**{k: v for k, v in values.items() if k not in unknown})
            keys = self.keys()
            self._arguments = frozenset(keys.get(k, k) for k in values if not k.startswith("_"))
        except ValidationError as exc:
            problems += _problems(exc)
        except SettingsError as exc:  # pragma: no cover - NoDecode leaves nothing to decode
            problems.append(str(exc))
        if problems:
            raise ConfigurationError(problems)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in self._url_fields and isinstance(value, str):
                yield name, mask_url(value)
            else:
                yield name, value

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> CacheSettings:
        """Build settings from a Flask-style mapping of ``CACHE_*`` / ``LOCALCACHE_*`` keys.

        The mapping is the whole configuration: keys it lacks take their defaults, not the
        environment's values. Keys without those prefixes are ignored (a Flask config holds
        many others); an unknown key with one of the prefixes is an error.
        """
        relevant = {k: v for k, v in mapping.items() if k.upper().startswith(KEY_PREFIXES)}
        return _MappingSettings(**relevant)

    @classmethod
    def keys(cls) -> dict[str, str]:
        """Return each configuration key (the environment variable) and its field name."""
        return {str(f.alias): name for name, f in cls.model_fields.items()}

    def as_mapping(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """Return the settings by key; secrets are masked unless ``reveal_secrets``."""
        out: dict[str, Any] = {}
        for key, name in self.keys().items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value() if reveal_secrets else MASK
            elif name == "cache_secret_key":
                value = [v.get_secret_value() if reveal_secrets else MASK for v in value]
            elif name in self._url_fields and value and not reveal_secrets:
                value = mask_url(value)
            out[key] = value
        return out

    def sources(self) -> dict[str, Source]:
        """Return, for each key, where its value came from."""
        environ = {k.upper() for k in os.environ}
        dotenv = {k.upper() for k in _read_dotenv(self.model_config.get("env_file"))}
        out: dict[str, Source] = {}
        for key, name in self.keys().items():
            if name not in self.model_fields_set:
                out[key] = "default"
            elif name in self._arguments:
                out[key] = "argument"
            elif key in environ:
                out[key] = "environment"
            elif key in dotenv:
                out[key] = ".env"
            else:
                out[key] = "argument"
        return out

    # -- validators -----------------------------------------------------------------------

    @field_validator("cache_options", mode="before")
    @classmethod
    def _parse_options(cls, value: Any) -> Any:
        if value is None:  # Flask-Caching's default
            return {}
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(value, Mapping):
            raise ValueError("must be a JSON object (a mapping of argument names to values)")
        return dict(value)

    @field_validator("cache_secret_key", mode="before")
    @classmethod
    def _parse_secret_keys(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str):
            if not value.strip():
                return ()
            if value.lstrip().startswith("["):
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise ValueError(f"starts with '[' but is not a JSON list ({exc})") from None
            else:
                value = [value]
        if not isinstance(value, list | tuple):
            raise ValueError("must be a string or a list of strings")
        for index, secret in enumerate(value, 1):
            plain = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if not isinstance(plain, str):
                raise ValueError(f"key #{index} is not a string")
            if len(plain.encode()) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"key #{index} is {len(plain.encode())} bytes long, too short to be secret;"
                    f" use at least {MIN_SECRET_LENGTH} random characters, e.g. from"
                    " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        return tuple(value)

    @field_validator("cache_type")
    @classmethod
    def _check_shared_backend(cls, value: str) -> str:
        _backend_or_error(value)
        return value

    @field_validator("localcache_type")
    @classmethod
    def _check_local_backend(cls, value: str) -> str:
        backend = _backend_or_error(value)
        if not backend.in_process:
            raise ValueError(
                f"{backend.__qualname__} is not an in-process cache, so it cannot be the local"
                " layer; use SimpleCache (or NullCache to disable the local layer) and put it"
                " in CACHE_TYPE instead"
            )
        return value

    @field_validator("localcache_no_serializer_type")
    @classmethod
    def _check_no_serializer_backend(cls, value: str) -> str:
        backend = _backend_or_error(value)
        if not backend.in_process or backend.serializes:
            raise ValueError(
                f"{backend.__qualname__} must keep values in this process by reference"
                " (in_process=True, serializes=False), like SimpleCacheNoSerializer"
            )
        return value

    @field_validator("cache_serializer")
    @classmethod
    def _check_serializer(cls, value: str) -> str:
        from stratacache.pluginmanager import serializers

        names = sorted(serializers())
        if value not in names:
            close = difflib.get_close_matches(value, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown serializer (registered: {', '.join(names)}){hint}")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # Python takes True for 1, but CACHE_THRESHOLD=True is a mistake, not a threshold.
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation in (int, float):
            raise ValueError("a boolean is not a number")
        return value

    @field_validator("cache_dir")
    @classmethod
    def _check_dir(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("empty; give a directory path, or unset it for the default")
        if value is not None and os.path.exists(value) and not os.path.isdir(value):
            raise ValueError("not a directory; give a directory path (created if missing)")
        return value

    @field_validator("cache_redis_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_redis_url(value)
        return value

    @field_validator("cache_redis_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if "://" in value:
            _check_redis_url(value)
        elif any(c in value for c in "/ @?#"):
            raise ValueError("not a host name; give a bare host name or a redis:// URL")
        elif ":" in value:
            raise ValueError(
                "not a host name; give the port in CACHE_REDIS_PORT, or the whole address as a"
                " URL (redis://host:6379/0, an IPv6 address in brackets: redis://[::1]:6379/0)"
            )
        return value


class _MappingSettings(CacheSettings):
    """Settings read from keyword arguments alone (see :meth:`CacheSettings.from_mapping`)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    def sources(self) -> dict[str, Source]:
        """Return, for each key, ``"mapping"`` or ``"default"``."""
        return {
            key: "mapping" if name in self.model_fields_set else "default"
            for key, name in self.keys().items()
        }


def mask_url(value: str) -> str:
    """Return ``value`` with the password of a URL (``scheme://user:password@host``) masked."""
    scheme, sep, rest = value.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at:
        return value
    user, colon, _ = credentials.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}://{masked}@{host}"


def _check_redis_url(value: str) -> None:
    from urllib.parse import urlsplit

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


def _backend_or_error(value: str) -> Any:
    from stratacache.registry import load_backend

    try:
        return load_backend(value)
    except (BackendNotFound, InvalidBackend) as exc:
        raise ValueError(str(exc)) from None


def _unknown_keys(keys: Any) -> list[str]:
    known_keys = CacheSettings.keys()
    known = set(known_keys) | set(known_keys.values())
    return [k for k in keys if k not in known]


def unknown_key_problems(unknown: list[str]) -> list[str]:
    """Describe unknown configuration keys, each with the closest known key."""
    known = list(CacheSettings.keys())
    problems = []
    for key in unknown:
        close = difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
        problems.append(f"{key}: unknown configuration key; {hint}")
    return problems


def _problems(exc: ValidationError) -> list[str]:
    fields = CacheSettings.model_fields
    by_key = {f.alias: name for name, f in fields.items()}
    problems = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        name = by_key.get(name, name)
        field = fields.get(name)
        key = field.alias if field and field.alias else name
        extra = field.json_schema_extra if field else None
        accepts = extra.get("accepts") if isinstance(extra, dict) else None
        value = error.get("input")
        if name in CacheSettings._secret_fields:
            shown = MASK
        elif name in CacheSettings._url_fields and isinstance(value, str):
            shown = repr(mask_url(value))
        else:
            shown = repr(value)
        message = str(error["msg"]).removeprefix("Value error, ")
        line = f"{key}={shown}: {message}"
        explained = ("did you mean", "installed backends", "backend:", "in-process")
        if accepts and not any(e in message.lower() for e in explained):
            line += f" (expected {accepts})"
        problems.append(line)
    return problems


def _read_dotenv(env_file: Any) -> dict[str, str | None]:
    if not env_file or not os.path.isfile(str(env_file)):
        return {}
    from dotenv import dotenv_values

    return dotenv_values(str(env_file))
