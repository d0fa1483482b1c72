"""Assembly: from validated settings to the tiers of a stack.

Settings are pure (:mod:`stratacache.settings`); this step resolves backend names, validates
each backend's own options with its model (:mod:`stratacache.options`), builds the backends
and wraps each in a :class:`~stratacache.tier.Tier`. Every problem is collected and raised
at once, each naming its key (``CACHE_REDIS_PORT=70000``) or key path
(``CACHE_LAYERS[2].url``), the bad value and the fix.

Two shapes of configuration build a stack:

* ``CACHE_LAYERS``: the tiers as a list of specs, first to deepest;
* the seed's keys (``LOCALCACHE_TYPE``, ``LOCALCACHE_NO_SERIALIZER_TYPE``, ``CACHE_TYPE`` and
  the backends' ``CACHE_*``/``LOCALCACHE_*`` keys): the tiers ``local``,
  ``local_no_serializer`` and ``shared``, exactly as before tiers were data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stratacache.assembly_checks import (
    BuildError,
    check_signing,
    kubernetes_hints,
    leftover_problems,
    named_problem,
    rejected,
    shown_options,
)
from stratacache.backend import Backend
from stratacache.errors import BackendNotFound, ConfigurationError, InvalidBackend
from stratacache.operations import HookedSerializer
from stratacache.options import BackendOptions, OptionsError, option_keys, validate_options
from stratacache.pluginmanager import implemented_operation_hooks, serializers
from stratacache.registry import load_backend
from stratacache.serializers import PickleSerializer, Serializer, as_serializer
from stratacache.tier import Tier, TierConfig
from stratacache.unpickling import RestrictedPickleSerializer

if TYPE_CHECKING:
    import pluggy

    from stratacache.settings import CacheSettings

__all__ = ["BY_REFERENCE", "Assembly", "TierPlan", "assemble", "tier_hooks"]

_TIER_HOOKS = frozenset(
    {
        "stratacache_get",
        "stratacache_set",
        "stratacache_delete",
        "stratacache_clear",
        "stratacache_clear_group",
    }
)
BY_REFERENCE = "local_no_serializer"
"""The name of the by-reference tier (``no_serialization=True``), implicit if none is given."""


@dataclass
class TierPlan:
    """What one tier is to be built from, and how its problems are named."""

    name: str
    type: str
    type_key: str  # "CACHE_TYPE" or "CACHE_LAYERS[1].type"
    role: str  # "local", "by_reference", "shared" (the seed's) or "tier" (CACHE_LAYERS)
    cap: float
    default_timeout: float
    values: dict[str, Any] = field(default_factory=dict)  # the model's options, by field
    names: dict[str, str] = field(default_factory=dict)  # field -> key or path
    explicit: Mapping[str, Any] = field(default_factory=dict)  # passed as they are
    explicit_key: str = "CACHE_OPTIONS"
    prefix: str | None = None  # the flat keys' prefix ("CACHE_", "LOCALCACHE_"), seed only


@dataclass
class Assembly:
    """The tiers built from one configuration.

    Attributes:
        tiers: The configured tiers, first to deepest (the seed's: local,
            local_no_serializer, shared).
        every: Every tier, the implicit by-reference tier included.
        plugin_options: The validated options of hook plugins, by model.
    """

    tiers: tuple[Tier, ...]
    every: tuple[Tier, ...]
    plugin_options: dict[type[BackendOptions], BackendOptions]


def assemble(settings: CacheSettings, manager: pluggy.PluginManager) -> Assembly:
    """Build the tiers of ``settings``.

    Raises:
        ConfigurationError: Every problem of the configuration, at once.
    """
    hook, hooked = tier_hooks(manager)
    hooked_ops = implemented_operation_hooks(manager)
    serializer_hook = (
        manager.hook if hooked_ops & {"stratacache_serialize", "stratacache_deserialize"} else None
    )
    problems: list[str] = []
    keys = settings.backend_keys
    consumed: set[str] = set()
    plugin_options = _plugin_options(manager, keys, consumed, problems)
    plans = _layer_plans(settings) if settings.cache_layers else _seed_plans(settings)
    shared_serializer = _serializer(settings, problems)
    chosen = "cache_serializer" in settings.model_fields_set
    allowed = _pickle_allow(settings, problems)
    tiers: list[Tier] = []
    for plan in plans:
        try:
            backend_cls = _load(plan)
            if plan.prefix is not None:
                _take_keys(plan, backend_cls, keys, consumed)
            # In-process tiers copy with pickle; the seed's shared tier, and every tier that
            # keeps bytes outside the process, use CACHE_SERIALIZER.
            shares = plan.role == "shared" or not backend_cls.in_process
            base = shared_serializer if shares else PickleSerializer()
            # A class's own serializer (cachelib's `serializer = ...` attribute) wins over
            # the default; CACHE_SERIALIZER, when set, wins over it on the shared tiers.
            declared = backend_cls.declared_serializer()
            if declared is not None and not (shares and chosen):
                base = declared
            if allowed is not None and not backend_cls.in_process:
                base = _restricted(plan, base, allowed)
            if serializer_hook is not None:
                stream = backend_cls.serializer_stream
                base = HookedSerializer(
                    as_serializer(base, stream=stream), plan.name, serializer_hook
                )
            backend, shown = _build(plan, backend_cls, settings, base)
        except BuildError as exc:
            problems += exc.problems
            continue
        if plan.role == "tier" and plan.name == BY_REFERENCE and backend_cls.serializes:
            problems.append(
                f"{plan.names.get('*', plan.type_key)}.name={plan.name!r}: the name of the"
                " by-reference tier (no_serialization=True); give this tier another name, or"
                " a backend that keeps references (SimpleCacheNoSerializer)"
            )
            continue
        config = TierConfig(plan.type, backend_cls, shown, settings, plan.cap)
        tiers.append(Tier(plan.name, backend, config, hook, hooked))
    problems += leftover_problems(settings, keys, consumed, tiers)
    problems = kubernetes_hints(settings, problems)
    if problems:  # a key two tiers read (LOCALCACHE_THRESHOLD) is reported once
        raise ConfigurationError(list(dict.fromkeys(problems)))
    for tier in tiers:
        check_signing(tier, settings)
    every = tuple(tiers)
    if not any(not t.cache.serializes for t in tiers):
        every = (_implicit_by_reference(settings, hook, hooked), *every)
    return Assembly(tuple(tiers), every, plugin_options)


def _seed_plans(settings: CacheSettings) -> list[TierPlan]:
    local_timeout = settings.localcache_default_timeout
    return [
        TierPlan(
            "local",
            settings.localcache_type,
            "LOCALCACHE_TYPE",
            "local",
            cap=local_timeout,
            default_timeout=local_timeout,
            prefix="LOCALCACHE_",
        ),
        TierPlan(
            BY_REFERENCE,
            settings.localcache_no_serializer_type,
            "LOCALCACHE_NO_SERIALIZER_TYPE",
            "by_reference",
            cap=local_timeout,
            default_timeout=local_timeout,
            prefix="LOCALCACHE_",
        ),
        TierPlan(
            "shared",
            settings.cache_type,
            "CACHE_TYPE",
            "shared",
            cap=0,
            default_timeout=settings.cache_default_timeout,
            explicit=settings.cache_options,
            prefix="CACHE_",
        ),
    ]


def _layer_plans(settings: CacheSettings) -> list[TierPlan]:
    assert settings.cache_layers is not None
    plans = []
    for spec in settings.cache_layers:
        plans.append(
            TierPlan(
                spec.name,
                spec.type,
                f"{spec.path}.type",
                "tier",
                cap=spec.timeout,
                # A whole number of seconds: cachelib refuses float default timeouts.
                default_timeout=math.ceil(spec.timeout) or settings.cache_default_timeout,
                values=dict(spec.options),
                names={"*": spec.path},
                explicit_key=spec.path,
            )
        )
    return plans


def _load(plan: TierPlan) -> type[Backend]:
    try:
        backend_cls = load_backend(plan.type)
    except (BackendNotFound, InvalidBackend) as exc:
        raise BuildError([f"{plan.type_key}={plan.type!r}: {exc}"]) from None
    name = backend_cls.__qualname__
    if plan.role == "local" and not backend_cls.in_process:
        raise BuildError(
            [
                f"{plan.type_key}={plan.type!r}: {name} is not an in-process cache, so it cannot"
                " be the local layer; use SimpleCache (or NullCache to disable the local layer)"
                " and put it in CACHE_TYPE instead"
            ]
        )
    if plan.role == "by_reference" and (not backend_cls.in_process or backend_cls.serializes):
        raise BuildError(
            [
                f"{plan.type_key}={plan.type!r}: {name} must keep values in this process by"
                " reference (in_process=True, serializes=False), like SimpleCacheNoSerializer"
            ]
        )
    if backend_cls.options_model is None and plan.values:
        plan.explicit, plan.values = plan.values, {}  # no model: the constructor decides
    return backend_cls


def _take_keys(
    plan: TierPlan, backend_cls: type[Backend], keys: Mapping[str, Any], consumed: set[str]
) -> None:
    """Give a seed tier the flat keys of its backend's model (``CACHE_REDIS_PORT``...)."""
    model = backend_cls.options_model
    if model is None or plan.prefix is None:
        return
    for key, name in option_keys(model, plan.prefix).items():
        plan.names[name] = key
        if key in keys:
            plan.values[name] = keys[key]
            consumed.add(key)


def _build(
    plan: TierPlan, backend_cls: type[Backend], settings: CacheSettings, serializer: Serializer
) -> tuple[Backend, dict[str, Any]]:
    model = backend_cls.options_model
    arguments: dict[str, Any] = {}
    if model is not None:
        try:
            arguments = validate_options(model, plan.values, plan.names).arguments()
        except OptionsError as exc:
            raise BuildError(exc.problems) from None
    generic: dict[str, Any] = {"default_timeout": plan.default_timeout, "serializer": serializer}
    if plan.role in ("shared", "tier"):
        generic["key_prefix"] = settings.cache_key_prefix
        secrets = [k.get_secret_value() for k in settings.cache_secret_key]
        generic["secret_key"] = secrets or None
    keyless = {n for n in model.model_fields if n not in plan.names} if model else set()
    shadowed = [k for k in plan.explicit if k in generic or (k in arguments and k not in keyless)]
    if shadowed:  # one source of truth: the validated setting
        raise BuildError(
            [
                f"{plan.explicit_key}={shown_options(plan.explicit, model)!r}: {k!r} is a setting"
                f" of its own; set {plan.names.get(k, 'its CACHE_* key')} instead"
                for k in shadowed
            ]
        )
    # An option with no flat key of its own (FileSystemCache's mode) may come from
    # CACHE_OPTIONS, which the constructor then validates.
    arguments = {k: v for k, v in arguments.items() if k not in plan.explicit}
    options = {**generic, **arguments}
    try:
        backend = backend_cls.from_options(options, explicit=plan.explicit)
    except (TypeError, ValueError, OSError) as exc:
        if isinstance(exc, OptionsError) and exc.rejected:  # each names its argument
            raise BuildError([named_problem(plan, p, model) for p in exc.rejected]) from exc
        raise BuildError([rejected(plan, backend_cls, exc, options)]) from exc
    passed = {**backend_cls.accepted_options(options), **plan.explicit}
    return backend, shown_options(passed, model)


def _serializer(settings: CacheSettings, problems: list[str]) -> Serializer:
    import difflib

    found = serializers()
    name = settings.cache_serializer
    if name in found:
        return found[name]
    names = sorted(found)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    problems.append(
        f"CACHE_SERIALIZER={name!r}: unknown serializer (registered: {', '.join(names)}){hint}"
    )
    return PickleSerializer()


def _pickle_allow(settings: CacheSettings, problems: list[str]) -> tuple[str, ...] | None:
    """Return ``CACHE_PICKLE_ALLOW``, or ``None`` (with a problem) when it cannot apply."""
    allowed = settings.cache_pickle_allow
    if allowed is not None and settings.cache_serializer != "pickle":
        problems.append(
            f"CACHE_PICKLE_ALLOW={list(allowed)!r}: it restricts what pickle loads, but"
            f" CACHE_SERIALIZER={settings.cache_serializer!r} is not pickle; unset"
            " CACHE_PICKLE_ALLOW, or set CACHE_SERIALIZER=pickle"
        )
        return None
    return allowed


def _restricted(plan: TierPlan, base: Any, allowed: tuple[str, ...]) -> Serializer:
    """Return the restricted pickle of a tier outside the process, or refuse its serializer."""
    if not isinstance(base, PickleSerializer):
        raise BuildError(
            [
                f"CACHE_PICKLE_ALLOW={list(allowed)!r}: it restricts what pickle loads, but"
                f" the tier {plan.name!r} ({plan.type}) reads with {base!r}, not pickle; unset"
                " CACHE_PICKLE_ALLOW, or give that backend stratacache's pickle serializer"
            ]
        )
    return RestrictedPickleSerializer(allowed, base.protocol)


def _plugin_options(
    manager: pluggy.PluginManager,
    keys: Mapping[str, Any],
    consumed: set[str],
    problems: list[str],
) -> dict[type[BackendOptions], BackendOptions]:
    """Validate the keys of hook plugins' option models (``CACHE_PROMETHEUS``...)."""
    out: dict[type[BackendOptions], BackendOptions] = {}
    for model in manager.hook.stratacache_options():
        names = option_keys(model, "CACHE_")
        values = {name: keys[key] for key, name in names.items() if key in keys}
        consumed.update(key for key in names if key in keys)
        try:
            out[model] = validate_options(model, values, {v: k for k, v in names.items()})
        except OptionsError as exc:
            problems += exc.problems
    return out


def tier_hooks(manager: pluggy.PluginManager) -> tuple[pluggy.HookRelay | None, frozenset[str]]:
    """Return the hook relay and the tier operation hooks some plugin implements."""
    hooked = implemented_operation_hooks(manager) & _TIER_HOOKS
    return (manager.hook if hooked else None), hooked


def _implicit_by_reference(
    settings: CacheSettings, hook: pluggy.HookRelay | None, hooked: frozenset[str]
) -> Tier:
    backend_cls = load_backend("SimpleCacheNoSerializer")
    backend = backend_cls.from_options(
        {"default_timeout": settings.cache_default_timeout}, explicit={}
    )
    config = TierConfig("SimpleCacheNoSerializer", backend_cls, {}, settings, 0)
    return Tier(BY_REFERENCE, backend, config, hook, hooked)
