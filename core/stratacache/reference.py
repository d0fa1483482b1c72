"""The keys of every installed backend and plugin: for ``stratacache config`` and the docs.

Unlike the settings model, this imports every installed backend (to read its options
model): it serves the operator's CLI and the documentation generator, never the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from stratacache.errors import BackendNotFound, ConfigurationError, InvalidBackend
from stratacache.masking import MASK, is_secret_name, mask_url
from stratacache.options import (
    BackendOptions,
    OptionsError,
    accepts,
    is_secret,
    option_keys,
    validate_options,
)

if TYPE_CHECKING:
    from stratacache.settings import CacheSettings, Source

__all__ = ["OptionKey", "effective_settings", "option_reference"]


@dataclass(frozen=True)
class OptionKey:
    """One flat key of a backend's or plugin's options model."""

    key: str
    field: str
    model: type[BackendOptions]
    owners: tuple[str, ...]

    @property
    def default(self) -> Any:
        """The option's default value."""
        return self.model.model_fields[self.field].get_default(call_default_factory=True)

    @property
    def accepts(self) -> str:
        """What a valid value looks like."""
        return accepts(self.model, self.field) or ""

    @property
    def description(self) -> str:
        """One line on what the option does."""
        return self.model.model_fields[self.field].description or ""


def option_reference() -> dict[str, OptionKey]:
    """Return every flat key of the installed backends and hook plugins, by key."""
    from stratacache.pluginmanager import load_plugins
    from stratacache.registry import installed_backends, load_backend

    found: dict[str, OptionKey] = {}

    def add(model: type[BackendOptions], prefixes: tuple[str, ...], owner: str) -> None:
        for prefix in prefixes:
            for key, name in option_keys(model, prefix).items():
                known = found.get(key)
                owners = (*known.owners, owner) if known else (owner,)
                found[key] = OptionKey(key, name, known.model if known else model, owners)

    for info in installed_backends():
        try:
            backend = load_backend(info.name)
        except (BackendNotFound, InvalidBackend):
            continue
        if backend.options_model is not None:
            prefixes = ("CACHE_", "LOCALCACHE_") if backend.in_process else ("CACHE_",)
            add(backend.options_model, prefixes, info.name)
    for model in load_plugins().hook.stratacache_options():
        add(model, ("CACHE_",), f"plugin {model.__module__}")
    return dict(sorted(found.items()))


def _shown(value: Any, secret: bool, key: str) -> Any:
    if isinstance(value, SecretStr) or ((secret or is_secret_name(key)) and value):
        return MASK
    return mask_url(value) if isinstance(value, str) else value


def effective_settings(settings: CacheSettings) -> dict[str, tuple[Any, Source]]:
    """Return every key, the installed backends' included: its validated value and source.

    Secrets are masked. Keys no installed backend declares are shown as given.

    Raises:
        ConfigurationError: A backend key's value is invalid for its model.
    """
    sources = settings.sources()
    layers = settings.cache_layers is not None
    out: dict[str, tuple[Any, Source]] = {
        key: (value, sources[key])
        for key, value in settings.as_mapping().items()
        # Beside CACHE_LAYERS the seed's per-layer keys do not apply: list them only if set.
        if not (layers and key in settings.PER_LAYER_KEYS and sources[key] == "default")
    }
    given = settings.backend_keys
    problems: list[str] = []
    for key, option in option_reference().items():
        if key not in given:
            if not layers:
                secret = is_secret(option.model, option.field)
                out[key] = (_shown(option.default, secret, key), "default")
            continue
        try:
            validated = validate_options(
                option.model, {option.field: given[key]}, {option.field: key}
            )
        except OptionsError as exc:
            problems += exc.problems
            continue
        value = getattr(validated, option.field)
        out[key] = (_shown(value, is_secret(option.model, option.field), key), sources[key])
    if problems:
        raise ConfigurationError(problems)
    return out
