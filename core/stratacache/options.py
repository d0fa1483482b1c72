"""Backend options: the pydantic model each backend declares for the settings it owns.

A backend names its options in a model deriving from :class:`BackendOptions` and points
:attr:`Backend.options_model <stratacache.Backend.options_model>` at it. Each field is one
option: its name is the constructor argument (and the key of a ``CACHE_LAYERS`` tier spec),
and :func:`option` gives it the configuration key it is read from in the seed's flat
vocabulary, without the layer's prefix: ``option(6379, key="REDIS_PORT")`` is
``CACHE_REDIS_PORT`` for the shared tier. A key shared by the local tier
(``LOCALCACHE_THRESHOLD``) is the same field read under the ``LOCALCACHE_`` prefix.

Nothing here imports a backend: models are plain pydantic, validated by the assembly step
(:mod:`stratacache.assembly`), whose problems name the key or the key path
(``CACHE_LAYERS[2].url``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from stratacache.masking import MASK, is_secret_name, mask_url

__all__ = [
    "BackendOptions",
    "OptionProblem",
    "OptionsError",
    "option",
    "option_keys",
    "validate_options",
]


class BackendOptions(BaseModel):
    """Base of a backend's options model: frozen, and unknown options are errors.

    Subclasses declare fields with :func:`option`. A field typed :class:`~pydantic.SecretStr`
    is a secret: masked wherever settings are shown, revealed only to the constructor.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    def arguments(self) -> dict[str, Any]:
        """Return the constructor arguments: every field, secrets revealed."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out


def option(
    default: Any = ...,
    *,
    key: str | None,
    accepts: str,
    description: str,
    **constraints: Any,
) -> Any:
    """Declare one option of a backend.

    Args:
        default: The value when the option is not set.
        key: The flat key without its layer prefix (``"REDIS_HOST"`` for
            ``CACHE_REDIS_HOST``), or ``None`` for an option only a tier spec can set.
        accepts: What a valid value looks like, for error messages and the docs.
        description: One line for the configuration reference.
        **constraints: pydantic constraints (``ge=0``, ``min_length=1``...).
    """
    return Field(
        default,
        description=description,
        json_schema_extra={"key": key, "accepts": accepts},
        **constraints,
    )


def _extra(model: type[BackendOptions], name: str) -> Mapping[str, Any]:
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, Mapping) else {}


def option_keys(model: type[BackendOptions], prefix: str) -> dict[str, str]:
    """Return ``{flat key: field name}`` of ``model`` under ``prefix`` (``"CACHE_"``)."""
    keys: dict[str, str] = {}
    for name in model.model_fields:
        key = _extra(model, name).get("key")
        if key:
            keys[prefix + str(key)] = name
    return keys


def accepts(model: type[BackendOptions], name: str) -> str | None:
    """Return the ``accepts`` text of the option ``name`` of ``model``."""
    value = _extra(model, name).get("accepts")
    return str(value) if value is not None else None


def is_secret(model: type[BackendOptions], name: str) -> bool:
    """Return whether the option ``name`` of ``model`` holds a secret."""
    annotation = str(model.model_fields[name].annotation)
    return "SecretStr" in annotation


@dataclass(frozen=True)
class OptionProblem:
    """What a backend finds wrong with one of its constructor arguments.

    Attributes:
        option: The argument's name (``url``, ``ssl_password``...).
        value: Its value (shown masked when the name or the model says it is a secret).
        text: What is wrong and the fix, without the name or the value.
    """

    option: str
    value: Any
    text: str

    def shown(self, model: type[BackendOptions] | None = None) -> str:
        """The value as a problem may show it: ``repr``, secrets masked, URLs' passwords too."""
        secret = is_secret_name(self.option) or (
            model is not None
            and self.option in model.model_fields
            and is_secret(model, self.option)
        )
        if self.value and secret:
            return repr(MASK)
        if isinstance(self.value, str):
            return repr(mask_url(self.value))
        return repr(self.value)


class OptionsError(ValueError):
    """The options of one tier are invalid; :attr:`problems` names each by its path.

    Raised by :func:`validate_options`, and by a backend that refuses some of its arguments
    at construction (its constructor or :meth:`Backend.from_options
    <stratacache.Backend.from_options>`), built with :meth:`refusing`: then
    :attr:`rejected` holds each argument's problem, and the assembly step names each by the
    setting it came from: its key (``CACHE_REDIS_URL``), its tier spec path
    (``CACHE_LAYERS[1].url``) or ``CACHE_OPTIONS.<name>``.
    """

    def __init__(self, problems: list[str], rejected: list[OptionProblem] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.rejected = rejected or []

    @classmethod
    def refusing(cls, rejected: list[OptionProblem]) -> OptionsError:
        """The error of a backend that refuses the arguments of ``rejected``."""
        return cls([f"{p.option}={p.shown()}: {p.text}" for p in rejected], rejected)


def validate_options(
    model: type[BackendOptions], values: Mapping[str, Any], names: Mapping[str, str]
) -> BackendOptions:
    """Validate ``values`` (by field name) into ``model``.

    Args:
        model: The backend's options model.
        values: The options given, by field name.
        names: How each field is named in problems: its key (``CACHE_REDIS_PORT``) or its
            path (``CACHE_LAYERS[2].port``); fields missing here use ``<prefix>.<field>``
            from the entry ``"*"``.

    Raises:
        OptionsError: Every invalid or unknown option, each with its value and the fix.
    """
    fields = list(model.model_fields)
    problems: list[str] = []
    known = {k: v for k, v in values.items() if k in model.model_fields}
    for unknown in (k for k in values if k not in model.model_fields):
        close = difflib.get_close_matches(unknown, fields, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"its options: {', '.join(fields)}"
        where = names.get(unknown) or f"{names.get('*', '')}.{unknown}"
        problems.append(f"{where}: unknown option of {model.__qualname__}; {hint}")
    try:
        validated = model(**known)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            where = names.get(name) or f"{names.get('*', '')}.{name}"
            value = error.get("input")
            if is_secret_name(name) or (name in model.model_fields and is_secret(model, name)):
                shown = repr(MASK)
            elif isinstance(value, str) and "://" in value:
                shown = repr(mask_url(value))
            else:
                shown = repr(value)
            message = str(error["msg"]).removeprefix("Value error, ")
            text = accepts(model, name) if name in model.model_fields else None
            line = f"{where}={shown}: {message}"
            if text:
                line += f" (expected {text})"
            problems.append(line)
        validated = None
    if problems or validated is None:
        raise OptionsError(problems)
    return validated
