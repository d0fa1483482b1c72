"""Validating a configuration whole: the settings model's problems and the assembly's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratacache.settings import CacheSettings

__all__ = ["settings_or_every_problem"]


def settings_or_every_problem(
    mapping: Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> CacheSettings:
    """Build the settings; if they are invalid, list the assembly's problems too.

    The core model fails first on its own keys; to report every problem at once, the
    assembly then runs on the same configuration with the invalid core keys at their
    defaults, and its problems join the model's.
    """
    from stratacache.errors import ConfigurationError

    def build(drop: set[str]) -> CacheSettings:
        if mapping is not None:
            return CacheSettings.from_mapping(
                {k: v for k, v in mapping.items() if k.upper() not in drop}
            )
        fields = CacheSettings.model_fields
        defaults = {
            k: fields[n].get_default(call_default_factory=True)
            for k, n in CacheSettings.keys().items()
            if k in drop
        }
        given = {k: v for k, v in overrides.items() if k.upper() not in drop}
        return CacheSettings(**{**defaults, **given})

    try:
        return build(set())
    except ConfigurationError as exc:
        problems = list(exc.problems)
        bad = {p.split("=", 1)[0].split(":", 1)[0].upper() for p in problems}
        try:
            retry = build(bad)
            from stratacache.assembly import assemble
            from stratacache.pluginmanager import load_plugins

            assemble(retry, load_plugins())
        except ConfigurationError as more:
            problems += [p for p in more.problems if p not in problems]
        raise ConfigurationError(problems) from None
