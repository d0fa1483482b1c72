"""The cache keys of Flask views: the path, quoted, and the sorted query arguments."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from flask import has_request_context, request

from stratacache.keys import MAX_KEY_LENGTH

__all__ = ["QueryArgs", "view_key"]

QueryArgs = str | Mapping[str, Any] | Iterable[tuple[str, Any]]
"""A query string, a mapping, or ``(name, value)`` pairs (as Flask-Caching takes them)."""


def _query_pairs(query_args: QueryArgs | None) -> list[tuple[str, str]]:
    if query_args is None:
        if not has_request_context():
            return []
        pairs: Iterable[tuple[str, Any]] = request.args.items(multi=True)
    elif isinstance(query_args, str):
        pairs = parse_qsl(query_args.removeprefix("?"), keep_blank_values=True)
    elif isinstance(query_args, Mapping):
        pairs = query_args.items()
    else:
        pairs = query_args
    return sorted((str(name), str(value)) for name, value in pairs)


def view_key(
    key_prefix: str | Callable[[], str],
    with_query: bool,
    path: str | None,
    query_args: QueryArgs | None,
) -> str:
    """Return the key of a view's response: ``key_prefix`` with the path, and the query.

    Keys longer than :data:`~stratacache.keys.MAX_KEY_LENGTH` end in a SHA-256 digest.
    """
    if callable(key_prefix):
        key = key_prefix()
    elif "%s" in key_prefix:
        if path is None:
            if not has_request_context():
                raise RuntimeError(
                    f"the cache key {key_prefix!r} names the request path: call the view in a"
                    " request, or pass path= to make_cache_key() or delete_cached()"
                )
            path = request.path
        # Quoted, so a "?" decoded from the path (/x%3Fq=1) cannot pass for the query.
        key = key_prefix % quote(path, safe="/")
    else:
        key = key_prefix
    if with_query:
        pairs = _query_pairs(query_args)
        if pairs:
            key = f"{key}?{urlencode(pairs)}"
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        key = f"{key[:120]}...#{digest}"
    return key
