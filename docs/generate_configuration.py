"""Write docs/configuration.md from the settings model, so the reference cannot drift.

    .venv/bin/python docs/generate_configuration.py > docs/configuration.md

A test checks that the committed page equals this script's output.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic.fields import FieldInfo

from stratacache import CacheSettings, CacheStack, ConfigurationError
from stratacache.options import validate_options
from stratacache.reference import OptionKey, option_reference

INTRO = """\
# Configuration

Settings are read, in order of precedence, from keyword arguments (`configure(CACHE_TYPE=...)`),
environment variables, a `.env` file in the working directory, and the defaults below. A
Flask-style mapping (`configure({"CACHE_TYPE": ...})`) is the whole configuration on its own:
keys it lacks take their defaults, and its keys without a `CACHE_`/`LOCALCACHE_` prefix are
ignored.

Each key is also the name of its environment variable (case-insensitive) and of its `.env`
line: `CACHE_TYPE=RedisCacheNoExceptions` in the environment and
`{"CACHE_TYPE": "RedisCacheNoExceptions"}` in a mapping set the same thing.

Everything is validated once, at start-up: a `ConfigurationError` lists every problem at
once, each naming the key, the bad value and what is accepted; an unknown `CACHE_*` key in a
mapping or in keyword arguments gets a "did you mean". The same key from the environment or
`.env` is one logged warning at configure, with the same "did you mean" over every installed
backend's and plugin's keys (`CACHE_WARN_UNKNOWN_ENV=false` silences it). The variables
Kubernetes injects for a Service named `cache` or `cache-redis` (`CACHE_SERVICE_HOST`,
`CACHE_PORT_6379_TCP_ADDR`, `CACHE_REDIS_SERVICE_PORT`...) are left out; when one collides with
a key (`CACHE_REDIS_PORT=tcp://10.0.0.1:6379`), the error says so and how to avoid it: rename
the Service, set `enableServiceLinks: false` in the pod spec, or set the key in the container's
`env`. `stratacache config` prints the effective settings, secrets masked, with where each
value came from. The keys a backend
reads are listed on its page under [Backends](backends/index.md).

| key (environment variable) | type | default | example | meaning |
|---|---|---|---|---|"""

DETAILS = """\
## Every key

What each key accepts, with an example as it is written in the environment (or a `.env`
file)."""

# An example value of every key, as written in the environment. A key missing here (and
# without ``examples=[...]`` on its field) stops the generator: document it.
EXAMPLES: dict[str, str] = {
    "CACHE_TYPE": "RedisCacheNoExceptions",
    "CACHE_DEFAULT_TIMEOUT": "600",
    "CACHE_KEY_PREFIX": "myapp_",
    "CACHE_DIR": "/var/cache/myapp",
    "CACHE_THRESHOLD": "10000",
    "CACHE_OPTIONS": '{"mode": 416}',
    "CACHE_SERIALIZER": "json",
    "CACHE_SECRET_KEY": "a-long-random-secret-from-your-vault",
    "CACHE_REDIS_HOST": "redis.internal",
    "CACHE_REDIS_PORT": "6380",
    "CACHE_REDIS_DB": "2",
    "CACHE_REDIS_PASSWORD": "from-your-secret-store",
    "CACHE_REDIS_URL": "rediss://redis.internal:6380/0",
    "CACHE_REDIS_CONNECT_TIMEOUT": "0.25",
    "CACHE_REDIS_READ_TIMEOUT": "0.5",
    "CACHE_REDIS_USERNAME": "cache-user",
    "CACHE_REDIS_CLUSTER": "10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
    "CACHE_REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379",
    "CACHE_REDIS_SENTINEL_MASTER": "mymaster",
    "CACHE_REDIS_SENTINEL_USERNAME": "sentinel-user",
    "CACHE_REDIS_SENTINEL_PASSWORD": "change-me",
    "CACHE_REDIS_READ_FROM_REPLICAS": "false",
    "CACHE_INVALIDATION": "auto",
    "CACHE_ATOMIC_LOCK_TIMEOUT": "120",
    "CACHE_ATOMIC_WAIT": "130",
    "CACHE_ATOMIC_RETRIES": "10",
    "CACHE_ATOMIC_OUTAGE_AFTER": "2",
    "LOCALCACHE_TYPE": "NullCache",
    "LOCALCACHE_DEFAULT_TIMEOUT": "30",
    "LOCALCACHE_THRESHOLD": "5000",
    "LOCALCACHE_NO_SERIALIZER_TYPE": "stratacache_plugins.simple:SimpleCacheNoSerializer",
    "CACHE_LAYERS": '[{"type": "SimpleCache", "timeout": 60}, {"type": "RedisCache", "url":'
    ' "redis://cache:6379/0"}]',
    "CACHE_PROMETHEUS": "true",
    "CACHE_OTEL": "true",
}

EXAMPLE = """\
## Example

```python
import stratacache

settings = stratacache.configure(
    {
        "CACHE_TYPE": "FileSystemCache",
        "CACHE_DIR": "/tmp/stratacache-docs-example",
        "CACHE_DEFAULT_TIMEOUT": 600,
        "LOCALCACHE_THRESHOLD": 1000,
    }
)
assert settings.sources()["CACHE_TYPE"] == "mapping"

try:
    stratacache.configure({"CACHE_DEFAULT_TIMEOUT": -1, "CACHE_TIMEOUT": 5})
except stratacache.ConfigurationError as exc:
    print(exc)
```

prints:

```text"""

OUTRO = """\
```

## Hook plugins

Hook-implementing plugins are loaded from the `stratacache.plugins` entry-point group the
first time the cache is configured; see [plugins.md](plugins.md)."""

BAD_EXAMPLE = {"CACHE_DEFAULT_TIMEOUT": -1, "CACHE_TIMEOUT": 5}


def _default(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{value!r}`"


def _type(annotation: Any) -> str:
    """Return a field's type as Python spells it (``str | None``, ``dict[str, Any]``)."""
    shown = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(?:typing|pydantic\.types)\.", "", shown)


def _example(field: FieldInfo) -> str:
    """Return the example of a field as an environment line, checked against the model."""
    key = str(field.alias)
    value = str(field.examples[0]) if field.examples else EXAMPLES.get(key)
    if value is None:
        raise SystemExit(
            f"{key} has no example: give its Field examples=[...] in settings.py, or add it"
            " to EXAMPLES in docs/generate_configuration.py"
        )
    try:
        CacheSettings.from_mapping({key: value})
    except ConfigurationError as exc:
        raise SystemExit(f"the documented example of {key} is invalid: {exc}") from exc
    return f"{key}={shlex.quote(value)}"


# Options whose example is valid only beside another option's.
COMPANIONS: dict[str, dict[str, str]] = {
    "sentinels": {"sentinel_master": "mymaster"},
    "sentinel_master": {"sentinels": "10.0.0.1:26379"},
}


def _option_example(option: OptionKey) -> str:
    """Return the example of a backend's key, checked against the backend's model."""
    value = EXAMPLES.get(option.key)
    if value is None:
        raise SystemExit(f"{option.key} has no example: add it to EXAMPLES")
    given = {**COMPANIONS.get(option.field, {}), option.field: value}
    validate_options(option.model, given, {option.field: option.key})
    return f"{option.key}={shlex.quote(value)}"


BACKEND_KEYS = """## Keys owned by backends and plugins

Each backend declares the keys it reads in its options model (see
[writing a backend](writing-a-backend.md)); the table lists those of every installed
backend and hook plugin. A key is validated by its owner when a tier uses that backend: set
for a backend no tier uses, it is an error when given explicitly (`configure()` arguments, a
mapping) and one warning at start-up when it comes from the environment or `.env`. Beside
`CACHE_LAYERS`, give these options in the tier specs, by the name in the `option` column.

| key (environment variable) | owners | option | default | example | meaning |
|---|---|---|---|---|---|"""


def _backend_rows(details: list[str]) -> list[str]:
    rows = []
    for key, option in option_reference().items():
        owners = ", ".join(option.owners)
        example = _option_example(option)
        rows.append(
            f"| [`{key}`](#{key.lower()}) | {_cell(owners)} | `{option.field}`"
            f" | {_default(option.default)} | `{_cell(example)}` | {_cell(option.description)} |"
        )
        details += [
            "",
            f"### `{key}` {{#{key.lower()}}}",
            "",
            f"{option.description}",
            "",
            f"- owners: {owners} (option `{option.field}` in a `CACHE_LAYERS` tier spec)",
            f"- default: {_default(option.default)}",
            f"- accepts: {option.accepts}",
            f"- example: `{example}`",
        ]
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """Return the whole page."""
    rows = []
    details = [DETAILS]
    secret_keys = []
    for field in CacheSettings.model_fields.values():
        key = str(field.alias)
        extra = field.json_schema_extra
        accepts = str(extra["accepts"]) if isinstance(extra, dict) else ""
        default = _default(field.get_default(call_default_factory=True))
        example = _example(field)
        type_ = _type(field.annotation)
        if "SecretStr" in type_:
            secret_keys.append(key)
        rows.append(
            f"| [`{key}`](#{key.lower()}) | `{_cell(type_)}` | {default} | `{_cell(example)}`"
            f" | {_cell(field.description or '')} |"
        )
        details += [
            "",
            f"### `{key}` {{#{key.lower()}}}",
            "",
            f"{field.description}",
            "",
            f"- type: `{type_}`",
            f"- default: {default}",
            f"- accepts: {accepts}",
            f"- example: `{example}`",
        ]
    try:
        CacheStack.validate(BAD_EXAMPLE)
    except ConfigurationError as exc:
        error = str(exc)
    else:  # pragma: no cover - the example is invalid by construction
        raise AssertionError("the bad example validated")
    secrets = ", ".join(f"`{k}`" for k in secret_keys)
    note = f"Secrets ({secrets}) are masked wherever settings are printed.\n"
    backend = [BACKEND_KEYS, *_backend_rows(details)]
    page = [INTRO, *rows, "", note, *backend, "", EXAMPLE, error, OUTRO, "", *details]
    return "\n".join(page) + "\n"


if __name__ == "__main__":
    print(render(), end="")
