"""What the options models of the first-party backends share: numbers are never booleans.

It imports only pydantic and :mod:`stratacache.options`, so a backend's options module can
build on it without importing any backend (or its driver).
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import ValidationInfo, field_validator

from stratacache.options import BackendOptions

__all__ = ["PluginOptions"]


def _is_number(annotation: Any) -> bool:
    """Whether ``annotation`` is ``int`` or ``float``, alone or in a union (``int | None``)."""
    if annotation in (int, float):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_number(arg) for arg in get_args(annotation))
    return False


class PluginOptions(BackendOptions):
    """A :class:`~stratacache.options.BackendOptions` whose numbers refuse booleans.

    Python takes ``True`` for 1, but ``CACHE_THRESHOLD=True`` is a mistake, not a threshold.
    """

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and _is_number(field.annotation):
            raise ValueError("a boolean is not a number")
        return value
