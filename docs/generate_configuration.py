"""Write docs/configuration.md from the settings model, so the reference cannot drift.

    .venv/bin/python docs/generate_configuration.py > docs/configuration.md

A test checks that the committed page equals this script's output.
"""

from __future__ import annotations

from stratacache import CacheSettings, ConfigurationError

INTRO = """\
# Configuration

Settings are read, in order of precedence, from keyword arguments (`configure(CACHE_TYPE=...)`),
environment variables, a `.env` file in the working directory, and the defaults below. A
Flask-style mapping (`configure({"CACHE_TYPE": ...})`) is the whole configuration on its own:
keys it lacks take their defaults, and its keys without a `CACHE_`/`LOCALCACHE_` prefix are
ignored.

Everything is validated once, at start-up: a `ConfigurationError` lists every problem at
once, each naming the key, the bad value and what is accepted; an unknown `CACHE_*` key in a
mapping or in keyword arguments gets a "did you mean". `stratacache config` prints the
effective settings, secrets masked, with where each value came from.

| key | default | accepts | meaning |
|---|---|---|---|"""

EXAMPLE = """\
The Redis keys are declared now and used by the Redis backends. `CACHE_REDIS_PASSWORD` is a
secret: it is masked wherever settings are printed.

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


def render() -> str:
    """Return the whole page."""
    rows = []
    for field in CacheSettings.model_fields.values():
        extra = field.json_schema_extra
        accepts = extra["accepts"] if isinstance(extra, dict) else ""
        default = _default(field.get_default(call_default_factory=True))
        rows.append(f"| `{field.alias}` | {default} | {accepts} | {field.description} |")
    try:
        CacheSettings.from_mapping(BAD_EXAMPLE)
    except ConfigurationError as exc:
        error = str(exc)
    else:  # pragma: no cover - the example is invalid by construction
        raise AssertionError("the bad example validated")
    return "\n".join([INTRO, *rows, "", EXAMPLE, error, OUTRO]) + "\n"


if __name__ == "__main__":
    print(render(), end="")
