"""The core settings model: the keys every stack has, whatever its backends.

It holds only what is generic: ``CACHE_LAYERS``, the seed's type keys, the default timeouts,
the key prefix, the serializer, the secret key and the statistics switch. Every other
``CACHE_*`` / ``LOCALCACHE_*`` key belongs to a backend (``CACHE_REDIS_PORT``,
``CACHE_DIR``...) or a plugin (``CACHE_PROMETHEUS``): it is kept as given, with where it came
from, and validated by its owner's options model in the assembly step
(:mod:`stratacache.assembly`). Building settings imports no plugin and no backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from stratacache.masking import MASK, is_secret_name, mask_options, mask_url
from stratacache.settings.lists import parse_pickle_allow, string_list
from stratacache.settings.problems import problems_of, unknown_key_problems
from stratacache.settings.refresh import RECOVERY_MAX, REFRESH_WORKERS
from stratacache.settings.sources import KEY_PREFIXES, Source, backend_keys_from_files, read_dotenv
from stratacache.settings.tierspec import MAX_TIMEOUT, MAX_TIMEOUT_TEXT, TierSpec, parse_layers
from stratacache.signing import MIN_SECRET_LENGTH

__all__ = ["CacheSettings", "MappingSettings"]

_BACKEND_ACCEPTS = "an installed backend name (see `stratacache backends`) or a dotted path"
_TIMEOUT_ACCEPTS = f"a whole number of seconds >= 0 (0 = never expire), at most {MAX_TIMEOUT_TEXT}"


def _key(alias: str, accepts: str, *default: Any, **kwargs: Any) -> Any:
    """Declare a setting: its key (the environment variable) and what it accepts."""
    return Field(*default, alias=alias, json_schema_extra={"accepts": accepts}, **kwargs)


class CacheSettings(BaseSettings):
    """The validated configuration of the layer stack.

    Read from the environment (and a ``.env`` file) when built with no arguments; keyword
    arguments (by key, ``CACHE_TYPE=...``, or by field name, ``cache_type=...``) override the
    environment. Use :meth:`from_mapping` for a Flask-style config mapping. Instances are
    immutable. Keys owned by a backend or a plugin are in :attr:`backend_keys`.

    Raises:
        ConfigurationError: Listing every invalid core key at once.
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

    cache_layers: Annotated[tuple[TierSpec, ...] | None, NoDecode] = _key(
        "CACHE_LAYERS",
        'a JSON list of tier specs, e.g. [{"type": "SimpleCache", "timeout": 60},'
        ' {"type": "RedisCache", "url": "redis://cache:6379/0"}]',
        None,
        description="The tiers of the stack, first to deepest; replaces the per-layer keys.",
    )
    cache_type: str = _key(
        "CACHE_TYPE",
        _BACKEND_ACCEPTS,
        "NullCache",
        min_length=1,
        description="Backend of the shared layer.",
    )
    cache_default_timeout: int = _key(
        "CACHE_DEFAULT_TIMEOUT",
        _TIMEOUT_ACCEPTS,
        300,
        ge=0,
        le=MAX_TIMEOUT,
        description="Seconds an entry lives when no duration is given.",
    )
    cache_key_prefix: str = _key(
        "CACHE_KEY_PREFIX", "any string", "", description="Prefix of every shared-layer key."
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
        min_length=1,
        description="How the shared layer turns values into bytes.",
    )
    cache_secret_key: Annotated[tuple[SecretStr, ...], NoDecode] = _key(
        "CACHE_SECRET_KEY",
        f"a secret of at least {MIN_SECRET_LENGTH} characters, or a JSON list of them"
        ' (newest first) to rotate keys, e.g. ["new-secret...", "old-secret..."]',
        default_factory=tuple,
        validate_default=False,  # the default (no key) is not an empty list given
        description="Signs every shared-layer payload (HMAC-SHA256); unsigned or wrongly"
        " signed entries are never deserialized. The first key signs, any key verifies.",
    )
    cache_pickle_allow: Annotated[tuple[str, ...] | None, NoDecode] = _key(
        "CACHE_PICKLE_ALLOW",
        "a JSON list (or a comma-separated string) of module or class names, e.g."
        ' ["myapp.models", "fractions"]; [] allows the safe default set alone',
        None,
        examples=['["myapp.models", "fractions"]'],
        description="Restrict the pickle loads of the tiers outside the process (Redis, the"
        " file system) to a safe default set of globals (plain builtins, collections, datetime,"
        " decimal, uuid) and these names, matched by dotted prefix; any other global makes the"
        " entry unreadable. Needs CACHE_SERIALIZER=pickle. Unset: no restriction.",
    )
    localcache_type: str = _key(
        "LOCALCACHE_TYPE",
        "an installed in-process backend (SimpleCache, SimpleCacheNoSerializer, NullCache)"
        " or a dotted path to one",
        "SimpleCache",
        min_length=1,
        description="Backend of the local, in-process layer.",
    )
    localcache_default_timeout: int = _key(
        "LOCALCACHE_DEFAULT_TIMEOUT",
        _TIMEOUT_ACCEPTS,
        300,
        ge=0,
        le=MAX_TIMEOUT,
        description="Longest life of a local copy of a shared entry.",
    )
    localcache_no_serializer_type: str = _key(
        "LOCALCACHE_NO_SERIALIZER_TYPE",
        "an installed in-process backend that stores references (SimpleCacheNoSerializer)",
        "SimpleCacheNoSerializer",
        min_length=1,
        description="Backend of the by-reference local layer (no_serialization=True).",
    )
    cache_stats: bool = _key(
        "CACHE_STATS",
        "true or false (also 1/0, yes/no, on/off)",
        True,
        examples=["false"],
        description="Count hits, misses, writes, errors and compute time in cache.stats().",
    )
    cache_refresh_workers: int = REFRESH_WORKERS
    cache_recovery_max: int = RECOVERY_MAX
    cache_warn_unknown_env: bool = _key(
        "CACHE_WARN_UNKNOWN_ENV",
        "true or false (also 1/0, yes/no, on/off)",
        True,
        examples=["false"],
        description="Warn, at configure, on CACHE_*/LOCALCACHE_* environment and .env"
        " variables no tier takes (with a did-you-mean); false silences it.",
    )

    PER_LAYER_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "CACHE_TYPE",
            "CACHE_OPTIONS",
            "LOCALCACHE_TYPE",
            "LOCALCACHE_DEFAULT_TIMEOUT",
            "LOCALCACHE_NO_SERIALIZER_TYPE",
        }
    )
    """Core keys that describe the seed's fixed layers: an error beside ``CACHE_LAYERS``."""

    _arguments: frozenset[str] = PrivateAttr(default=frozenset())
    _backend_keys: dict[str, tuple[Any, Source]] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        core = self.keys()
        given = {k: v for k, v in values.items() if not k.startswith("_")}
        owned = {
            k.upper(): v
            for k, v in given.items()
            if k not in core and k not in core.values() and k.upper().startswith(KEY_PREFIXES)
        }
        unknown = [
            k for k in given if k not in core and k not in core.values() and k.upper() not in owned
        ]
        problems = unknown_key_problems(unknown, list(core))
        # The error is raised outside the except blocks, so it chains nothing: pydantic's
        # errors quote the input values, secrets included.
        try:
            super().__init__(**{k: v for k, v in given.items() if k in core or k in core.values()})
            self._arguments = frozenset(
                core.get(k, k) for k in given if k in core or k in core.values()
            )
            found = self._backend_keys_from_environment()
            found.update({k: (v, self._argument_source()) for k, v in owned.items()})
            self._backend_keys = found
        except ValidationError as exc:
            problems += problems_of(exc, type(self))
        except SettingsError as exc:  # pragma: no cover - NoDecode leaves nothing to decode
            problems.append(str(exc))
        if problems:
            from stratacache.errors import ConfigurationError

            raise ConfigurationError(problems)

    def _argument_source(self) -> Source:
        return "argument"

    def _backend_keys_from_environment(self) -> dict[str, tuple[Any, Source]]:
        return backend_keys_from_files(set(self.keys()), self.model_config.get("env_file"))

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, mask_options(value) if name == "cache_options" else value
        if self._backend_keys:
            yield "backend_keys", self.backend_keys_masked()

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> CacheSettings:
        """Build settings from a Flask-style mapping of ``CACHE_*`` / ``LOCALCACHE_*`` keys.

        The mapping is the whole configuration: keys it lacks take their defaults, not the
        environment's values. Keys without those prefixes are ignored (a Flask config holds
        many others).
        """
        relevant = {k: v for k, v in mapping.items() if k.upper().startswith(KEY_PREFIXES)}
        return MappingSettings(**relevant)

    @classmethod
    def keys(cls) -> dict[str, str]:
        """Return each core configuration key (the environment variable) and its field name."""
        return {str(f.alias): name for name, f in cls.model_fields.items()}

    @property
    def backend_keys(self) -> dict[str, Any]:
        """The keys owned by backends and plugins, as given (unvalidated), by key."""
        return {k: v for k, (v, _) in self._backend_keys.items()}

    def backend_key_sources(self) -> dict[str, Source]:
        """Where each of :attr:`backend_keys` came from."""
        return {k: s for k, (_, s) in self._backend_keys.items()}

    def backend_keys_masked(self) -> dict[str, Any]:
        """:attr:`backend_keys` with what looks secret masked (the models say for sure)."""
        out: dict[str, Any] = {}
        for key, value in self.backend_keys.items():
            if is_secret_name(key):
                out[key] = MASK
            elif isinstance(value, str):
                out[key] = mask_url(value)
            else:
                out[key] = value
        return out

    def explicit(self, key: str) -> bool:
        """Whether ``key`` was set (not defaulted) by an argument, a mapping or the environment."""
        if key in self._backend_keys:
            return True
        name = self.keys().get(key)
        return name is not None and name in self.model_fields_set

    def as_mapping(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """Return the settings by key, backend keys included; secrets masked unless asked."""
        out: dict[str, Any] = {}
        for key, name in self.keys().items():
            value = getattr(self, name)
            if name == "cache_secret_key":
                value = [v.get_secret_value() if reveal_secrets else MASK for v in value]
            elif name == "cache_layers" and value is not None:
                value = [spec.as_dict(reveal_secrets=reveal_secrets) for spec in value]
            elif name == "cache_options" and not reveal_secrets:
                value = mask_options(value)
            out[key] = value
        out.update(self.backend_keys if reveal_secrets else self.backend_keys_masked())
        return out

    def sources(self) -> dict[str, Source]:
        """Return, for each key set or defaulted, where its value came from."""
        out = self._core_sources()
        out.update(self.backend_key_sources())
        return out

    def _core_sources(self) -> dict[str, Source]:
        environ = {k.upper() for k in os.environ}
        dotenv = {k.upper() for k in read_dotenv(self.model_config.get("env_file"))}
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

    @field_validator("cache_layers", mode="before")
    @classmethod
    def _parse_layers(cls, value: Any) -> Any:
        return parse_layers(value)

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

    @field_validator("cache_pickle_allow", mode="before")
    @classmethod
    def _parse_pickle_allow(cls, value: Any) -> Any:
        return parse_pickle_allow(value)

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
            value = string_list(value, lambda one: [one])
        if not isinstance(value, list | tuple):
            raise ValueError("must be a string or a list of strings")
        if not value:  # given, yet no key: a typo must not turn signing off unseen
            raise ValueError(
                "an empty list of keys would sign nothing; give at least one key to sign"
                " payloads, or unset CACHE_SECRET_KEY to store them unsigned"
            )
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

    @field_validator("cache_default_timeout", "localcache_default_timeout", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any) -> Any:
        # Python takes True for 1, but CACHE_DEFAULT_TIMEOUT=True is a mistake, not seconds.
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        return value


class MappingSettings(CacheSettings):
    """Settings read from a mapping alone (see :meth:`CacheSettings.from_mapping`)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the given mapping only: neither the environment nor ``.env``."""
        return (init_settings,)

    def _argument_source(self) -> Source:
        return "mapping"

    def _backend_keys_from_environment(self) -> dict[str, tuple[Any, Source]]:
        return {}

    def _core_sources(self) -> dict[str, Source]:
        return {
            key: "mapping" if name in self.model_fields_set else "default"
            for key, name in self.keys().items()
        }
