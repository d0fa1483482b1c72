"""What the options models of the first-party backends share: numbers are never booleans.

It imports only pydantic and :mod:`stratacache.options`, so a backend's options module can
build on it without importing any backend (or its driver).
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import ValidationError, ValidationInfo, field_validator

from stratacache.options import BackendOptions, OptionProblem, accepts

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

    @classmethod
    def argument_problems(cls, values: dict[str, Any]) -> list[OptionProblem]:
        """Check constructor arguments (by field name) against their fields, strictly.

        For a backend built in code or from ``CACHE_OPTIONS``, whose values are given as
        they are meant: the text ``"2"`` is not the number 2 here, as it is in the
        environment. Return one problem per bad argument, with what is expected.
        """
        try:
            cls.model_validate(dict(values), strict=True)
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False):
                name = str(error["loc"][0]) if error["loc"] else ""
                text = str(error["msg"]).removeprefix("Value error, ")
                if isinstance(values.get(name), str) and error["type"].endswith("_type"):
                    text += ", not text"
                expected = accepts(cls, name) if name in cls.model_fields else None
                problems.append(
                    OptionProblem(name, values.get(name), f"{text} (expected {expected})")
                    if expected
                    else OptionProblem(name, values.get(name), text)
                )
            return problems
        return []

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and _is_number(field.annotation):
            raise ValueError("a boolean is not a number")
        return value
