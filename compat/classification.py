"""Why each peer test that does not pass against stratacache does not pass.

Each rule is a regular expression searched in the test's node id (``file::Class::test[id]``),
the first match wins. Every category but ``genuine`` names where the difference is
documented; a failure no rule matches is reported as an unclassified genuine
incompatibility, so a new one never hides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["CATEGORIES", "RULES", "Rule", "classify"]

CATEGORIES: Final = {
    "deliberate": "deliberate, documented difference",
    "not-shipped": "a backend stratacache does not ship",
    "private": "a peer's private internals (documented as not provided)",
    "genuine": "genuine incompatibility (open)",
}
"""Each category's name in the report."""

_FLASK = "flask.md"
_SUPPORT = f"{_FLASK}#what-cache-supports"
_VIEWS = f"{_FLASK}#cached-views"
_SWITCH = f"{_FLASK}#behaviour-to-know-when-switching"
_KEYS = f"{_FLASK}#configuration-every-flask-caching-option"
_PRIVATE = "migrating-from-flask-caching.md#private-names-of-flask-caching-and-cachelib"
_NONE = "migrating-from-flask-caching.md#behaviours-that-differ"
_SIMPLE = "backends/simple.md#where-it-differs-from-cachelibs-simplecache"
_KEYS_BUILT = "decorator.md#key-building"
_INIT = f"{_FLASK}#switching-from-flask-caching"
_TYPES = f"{_FLASK}#configuration-every-flask-caching-option"
_KEY_TEXT = "migrating-from-flask-caching.md#behaviours-that-differ"
_PRUNE = "migrating-from-flask-caching.md#behaviours-that-differ"


@dataclass(frozen=True)
class Rule:
    """Tests whose node id matches ``pattern`` fail for ``reason``, documented at ``link``."""

    pattern: str
    category: str
    reason: str
    link: str = ""


RULES: Final[tuple[Rule, ...]] = (
    # -- backends and drivers we do not ship ---------------------------------------------
    Rule(r"[Mm]emcache", "not-shipped", "memcached (no memcached backend)", _KEYS),
    Rule(r"uwsgi", "not-shipped", "uWSGI's cache", _KEYS),
    Rule(r"valkey", "not-shipped", "Valkey (cachelib's ValkeyCache)", _KEYS),
    Rule(r"mongodb", "not-shipped", "MongoDB (cachelib's MongoDbCache)", _KEYS),
    Rule(r"dynamodb", "not-shipped", "DynamoDB (cachelib's DynamoDbCache)", _KEYS),
    Rule(
        r"ClientsOverride",
        "private",
        "assigns stand-in objects to the private _write_client/_read_client of a"
        " RedisSentinelCache",
        _PRIVATE,
    ),
    Rule(r"test_interface_uniformity", "not-shipped", "needs cachelib's memcached", _KEYS),
    Rule(
        r"test_init_nullcache\[RedisSentinelCache\]",
        "deliberate",
        "CACHE_TYPE=RedisSentinelCache selects our RedisCache on the Sentinel topology; there"
        " is no class of that name to be an instance of",
        _TYPES,
    ),
    Rule(
        r"test_callable_key",
        "deliberate",
        "keys are str in every backend: cachelib's RedisCache calls a callable key, ours"
        " refuses it (TypeError with the fix) as every backend does",
        _KEY_TEXT,
    ),
    Rule(
        r"test_prune_old_entries",
        "deliberate",
        "past the threshold FileSystemCache prunes expired entries, then the oldest, down to"
        " 90% of it (cachelib: down to the threshold, soonest to expire first)",
        _PRUNE,
    ),
    Rule(
        r"test_empty_host",
        "deliberate",
        "host=None is refused with a ValueError naming the option, its value and the fix, not"
        " cachelib's exact text",
        _SWITCH,
    ),
    # -- Flask-Caching options and features refused loudly ---------------------------------
    Rule(r"hash_method|ciphers|test_memoize_hashes", "deliberate", "hash_method", _KEYS),
    Rule(r"source_check", "deliberate", "source_check / CACHE_SOURCE_CHECK", _KEYS),
    Rule(r"forced_update|is_stale", "deliberate", "forced_update and is_stale", _SUPPORT),
    Rule(
        r"args_to_ignore|ignore_args|ignore_kwarg|ignore_self",
        "deliberate",
        "args_to_ignore",
        _SUPPORT,
    ),
    Rule(r"test_memoize_none$|test_cached_none|cache_none", "deliberate", "cache_none", _SUPPORT),
    Rule(r"never_accept_none", "deliberate", "None is a value (cached)", _NONE),
    Rule(r"test_signals", "deliberate", "CACHE_ENABLE_SIGNALS (no blinker signals)", _KEYS),
    Rule(r"test_templates|jinja", "deliberate", "no {% cache %} Jinja2 tag", _SUPPORT),
    Rule(r"test_cache_add|test_cache_has$|proxy_methods", "deliberate", "no Cache.add", _SUPPORT),
    Rule(r"unlink", "deliberate", "no Cache.unlink", _SUPPORT),
    Rule(r"test_hit_cache", "deliberate", "response_hit_indication", _VIEWS),
    Rule(r"generate_cache_key_from_request_body", "deliberate", "make_cache_key=", _VIEWS),
    Rule(r"cached_reponse|CachedResponse", "deliberate", "no CachedResponse", _SUPPORT),
    Rule(r"http_exception", "deliberate", "an exception is never cached", _VIEWS),
    Rule(
        r"test_serializer\.py|cachelib_serializer",
        "deliberate",
        "CACHE_SERIALIZER is a name",
        _KEYS,
    ),
    Rule(r"cache_args|cache_options", "deliberate", "CACHE_ARGS; CACHE_OPTIONS's own keys", _KEYS),
    Rule(r"custom_cache_backend", "deliberate", "a class in CACHE_TYPE: a backend plugin", _KEYS),
    Rule(
        r"TestRedisCache::test_compat",
        "deliberate",
        "Flask-Caching's entries are not read",
        _SWITCH,
    ),
    Rule(r"test_subclassing.*(memoize|verhash)", "deliberate", "no version keys", _SUPPORT),
    Rule(r"ignore_errors", "deliberate", "ignore_errors (cachelib's deprecated name)", _KEYS),
    Rule(r"test_purge|threshold_zero", "deliberate", "SimpleCache's threshold", _SIMPLE),
    Rule(
        r"check_connection|unreachable_server", "deliberate", "RedisCacheError", "backends/redis.md"
    ),
    # -- private names -----------------------------------------------------------------------
    Rule(
        r"_memvname|verhash_delete|version_key|annotated_delete", "private", "_memvname", _PRIVATE
    ),
    Rule(r"kwargs_to_args", "private", "_memoize_kwargs_to_args", _PRIVATE),
    Rule(r"file_hash_method", "private", "cache._hash_method", _PRIVATE),
    Rule(
        r"run_safely|file_count|mgmt_element|EOFError|test_threshold",
        "private",
        "FileSystemCache internals",
        _PRIVATE,
    ),
    Rule(r"classarg|classfunc", "deliberate", "an instance needs a stable key", _SWITCH),
    Rule(r"arg_kwarg_var_keyword", "deliberate", "arguments bound to the signature", _KEYS_BUILT),
    Rule(r"init_app_multi_apps", "deliberate", "one process-wide stack per Cache", _INIT),
)
"""The rules, in order; the first that matches a test's node id classifies it."""


def classify(nodeid: str) -> Rule:
    """Return the rule that explains why ``nodeid`` does not pass (``genuine`` if none)."""
    for rule in RULES:
        if re.search(rule.pattern, nodeid):
            return rule
    return Rule("", "genuine", "unclassified: not investigated yet")
