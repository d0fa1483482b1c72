"""``CACHE_LAYERS``: the tier specs of a stack, checked for shape (not yet for backends).

A spec is a mapping with ``type`` (an entry-point name or a dotted path), an optional
``name`` (default: the type's last part; required when a type repeats) and ``timeout`` (the
tier's cap in seconds, 0 = none), and the backend's own options by name. Whether the type
exists and takes those options is the assembly step's business
(:mod:`stratacache.assembly`), which names problems by path: ``CACHE_LAYERS[2].url``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratacache.masking import mask_options

__all__ = ["MAX_TIMEOUT", "MAX_TIMEOUT_TEXT", "RESERVED", "TierSpec", "parse_layers"]

RESERVED = ("type", "name", "timeout")
"""The keys of a tier spec that are not backend options."""

MAX_TIMEOUT = 10 * 365 * 24 * 3600
"""The longest timeout a setting may give, in seconds: 10 years (0 means never expire).

Longer is a mistake, not a wish (never expiring is 0), and far longer breaks the backends:
Redis refuses an expiry past 2**63 milliseconds, and ``time.time() + timeout`` overflows
a float.
"""
MAX_TIMEOUT_TEXT = f"{MAX_TIMEOUT} (10 years)"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_EXAMPLE = '[{"type": "SimpleCache", "timeout": 60}, {"type": "RedisCache", "url": "redis://..."}]'


@dataclass(frozen=True)
class TierSpec:
    """One tier of ``CACHE_LAYERS``, as given.

    Attributes:
        type: The backend: an entry-point name or a dotted path.
        name: The tier's name (defaulted to the type's last part).
        timeout: The tier's cap in seconds (0 = no cap).
        options: The backend's options, by name, unvalidated.
        index: The position in the list, for problems (``CACHE_LAYERS[index]``).
    """

    type: str
    name: str
    timeout: float = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0

    @property
    def path(self) -> str:
        """``CACHE_LAYERS[index]``: how problems name this spec."""
        return f"CACHE_LAYERS[{self.index}]"

    def as_dict(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """Return the spec as it would be written, secrets masked unless asked."""
        out: dict[str, Any] = {"type": self.type, "name": self.name}
        if self.timeout:
            out["timeout"] = self.timeout
        out.update(self.options if reveal_secrets else mask_options(self.options))
        return out


def parse_layers(value: Any) -> tuple[TierSpec, ...] | None:
    """Check the shape of ``CACHE_LAYERS`` and return its specs.

    Raises:
        ValueError: Naming the path of every problem (``CACHE_LAYERS[1].timeout=-1: ...``).
    """
    if value is None or (isinstance(value, tuple) and all(isinstance(v, TierSpec) for v in value)):
        return value
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc}); write a JSON list of tier specs") from None
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of tier specs, got {type(value).__name__}")
    if not value:
        raise ValueError(
            "CACHE_LAYERS=[]: an empty list has no tier; give at least one, e.g."
            f" {_EXAMPLE}, or unset CACHE_LAYERS for the default stack"
        )
    problems: list[str] = []
    specs = [_spec(i, item, problems) for i, item in enumerate(value)]
    found = [s for s in specs if s is not None]
    seen: dict[str, int] = {}
    for spec in found:
        if spec.name in seen:
            problems.append(
                f"{spec.path}.name={spec.name!r}: the name of CACHE_LAYERS[{seen[spec.name]}] too;"
                ' give each tier a name of its own ("name" is required when a type repeats)'
            )
        seen.setdefault(spec.name, spec.index)
    if problems:
        raise ValueError("\n".join(problems))
    return tuple(found)


def _spec(index: int, item: Any, problems: list[str]) -> TierSpec | None:
    path = f"CACHE_LAYERS[{index}]"
    if not isinstance(item, Mapping):
        problems.append(
            f'{path}={item!r}: a tier spec is a JSON object with a "type", e.g.'
            ' {"type": "SimpleCache", "timeout": 60}'
        )
        return None
    bad = len(problems)
    type_ = item.get("type")
    if not isinstance(type_, str) or not type_.strip():
        problems.append(
            f"{path}.type={type_!r}: every tier needs a backend type, an installed backend"
            " name (see `stratacache backends`) or a dotted path"
        )
    name = item.get("name")
    if name is None and isinstance(type_, str):
        name = re.split(r"[.:]", type_)[-1]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"{path}.name={name!r}: a tier name is a word (letters, digits, _ . -),"
            ' e.g. "memory" or "redis"'
        )
    timeout = item.get("timeout", 0)
    number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    if not number or not 0 <= timeout <= MAX_TIMEOUT:
        problems.append(
            f"{path}.timeout={timeout!r}: the tier's cap must be a number of seconds >= 0, at"
            f" most {MAX_TIMEOUT_TEXT} (0 = no cap: entries live as long as in the tier below)"
        )
    if len(problems) > bad:
        return None
    options = {k: v for k, v in item.items() if k not in RESERVED}
    return TierSpec(str(type_), str(name), timeout, options, index)
