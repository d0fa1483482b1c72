"""The key forms of objects that declare their key, and of numpy and pandas objects.

Part of :mod:`stratacache.keys`, whose docstring states the key contract.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["array_form", "declared_key", "type_name"]


def type_name(cls: type) -> str:
    """Return ``module.qualname`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def declared_key(value: Any, cls: type) -> Any:
    """What the object declares as its key: ``__cache_key__()``, then ``__caching_id__``.

    ``__caching_id__`` is Flask-Caching's: a method called as ``obj.__caching_id__(obj)``
    (Flask-Caching's own call), a method without arguments, or a plain attribute.
    """
    if isinstance(value, type):
        return None
    cache_key = getattr(cls, "__cache_key__", None)
    if cache_key is not None:
        return cache_key(value)
    if getattr(cls, "__caching_id__", None) is None:
        return None
    ident = value.__caching_id__
    if not callable(ident):
        return ident
    try:
        takes_obj = bool(inspect.signature(ident).parameters)
    except (TypeError, ValueError):  # no signature (a builtin): called the documented way
        takes_obj = False
    return ident(value) if takes_obj else ident()


def array_form(value: Any, cls: type, encode: Callable[[Any], str]) -> str | None:
    """Encode a numpy or pandas object (``cls`` is from one of them) by its exact content.

    Their ``repr`` elides the middle of large arrays and frames, so it cannot key them. A
    numpy array enters by dtype, shape and a SHA-256 digest of its bytes (an array of
    Python objects element by element); a numpy scalar by dtype and bytes. pandas objects
    are refused: see the message. numpy is never imported here: a numpy object exists
    only if numpy is imported already.
    """
    module = cls.__module__
    if module == "pandas" or module.startswith("pandas."):
        raise TypeError(
            f"cannot build a cache key from a {type_name(cls)}: its repr truncates large"
            " objects, and digesting its content (index, columns, values) on every call"
            " would cost as much as the call may. Pass what identifies the data instead (a"
            " file name, a query, a version), or wrap it in a class whose"
            " __cache_key__(self) -> str returns such an identifier."
        )
    numpy = sys.modules.get("numpy")
    if numpy is not None and cls is numpy.ndarray:
        if value.dtype.hasobject:  # the bytes are addresses: encode the elements
            items = encode(value.tolist())
            return f"numpy.ndarray({value.dtype!r}, {value.shape!r}, {items})"
        digest = hashlib.sha256(value.tobytes()).hexdigest()
        return f"numpy.ndarray({value.dtype!r}, {value.shape!r}, sha256={digest})"
    if numpy is not None and isinstance(value, numpy.generic) and not value.dtype.hasobject:
        return f"numpy.{cls.__name__}({value.dtype!r}, {value.tobytes().hex()})"
    return None  # other numpy types: by repr, unless it looks truncated
