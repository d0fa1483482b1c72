"""The assembly step's checks: keys no tier takes, refused arguments, signing, masking."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stratacache.errors import ConfigurationError
from stratacache.masking import MASK, mask_options
from stratacache.options import BackendOptions, OptionProblem, is_secret
from stratacache.settings.problems import closest_key

if TYPE_CHECKING:
    from stratacache.assembly import TierPlan
    from stratacache.backend import Backend
    from stratacache.settings import CacheSettings
    from stratacache.tier import Tier

__all__ = [
    "BuildError",
    "check_signing",
    "installed_option_keys",
    "is_kubernetes_service_link",
    "kubernetes_hints",
    "leftover_problems",
    "named_problem",
    "rejected",
    "shown_options",
]

logger = logging.getLogger("stratacache.assembly")

_EXPLICIT_SOURCES = ("argument", "mapping")

# The variables Kubernetes injects for a Service named "cache" or "cache-redis" (service
# links): CACHE_SERVICE_HOST, CACHE_SERVICE_PORT[_NAME], CACHE_PORT,
# CACHE_PORT_6379_TCP[_PROTO|_PORT|_ADDR], and the same under CACHE_REDIS_.
_SERVICE_LINK = re.compile(
    r"CACHE(?:_REDIS)?_(?:SERVICE_HOST|SERVICE_PORT(?:_\w+)?"
    r"|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)"
)
_SERVICE_LINK_VALUE = re.compile(r"(?:tcp|udp|sctp)://\S+:\d+")
_PROBLEM_KEY = re.compile(r"(?P<key>[A-Z][A-Z0-9_]*)=")


def is_kubernetes_service_link(key: str) -> bool:
    """Whether ``key`` is a variable Kubernetes injects for a Service ``cache``/``cache-redis``."""
    return _SERVICE_LINK.fullmatch(key.upper()) is not None


def _injected(key: str, value: Any) -> bool:
    """Whether ``key=value`` has the name and the form of a Kubernetes service link."""
    text = value if isinstance(value, str) else ""
    return is_kubernetes_service_link(key) and _SERVICE_LINK_VALUE.fullmatch(text) is not None


def kubernetes_hints(settings: CacheSettings, problems: list[str]) -> list[str]:
    """Say so when a problem's key is a value Kubernetes injected (``CACHE_REDIS_PORT``).

    A Service named ``cache-redis`` gives every pod of its namespace
    ``CACHE_REDIS_PORT=tcp://10.0.0.1:6379``, which is also our key.
    """
    sources = settings.backend_key_sources()
    values = settings.backend_keys
    out = []
    for problem in problems:
        found = _PROBLEM_KEY.match(problem)
        key = found["key"] if found else ""
        if sources.get(key) in ("environment", ".env") and _injected(key, values.get(key)):
            service = "cache-redis" if key.startswith("CACHE_REDIS_") else "cache"
            hint = (
                f"; this looks like the variable Kubernetes injects for a Service named"
                f" {service!r} (service links), not a setting: rename the Service, set"
                " enableServiceLinks: false in the pod spec, or set"
                f" {key} explicitly in the container's env (it wins over service links)"
            )
            out.append(problem + hint)
        else:
            out.append(problem)
    return out


class BuildError(Exception):
    """A tier cannot be built; :attr:`problems` says why, by key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def shown_options(
    options: Mapping[str, Any], model: type[BackendOptions] | None = None
) -> dict[str, Any]:
    """Return ``options`` as they may be shown: secrets (by name or by model) masked, URLs'."""
    shown = mask_options(options)
    for name, value in options.items():
        if value and model is not None and name in model.model_fields and is_secret(model, name):
            shown[name] = MASK
    return shown


def named_problem(
    plan: TierPlan, problem: OptionProblem, model: type[BackendOptions] | None
) -> str:
    """Name a backend's refusal of one argument by the setting that gave it.

    ``CACHE_OPTIONS.ssl_password`` when it came from there, its key (``CACHE_REDIS_URL``)
    or its tier spec path (``CACHE_LAYERS[1].url``) otherwise.
    """
    option, shown = problem.option, problem.shown(model)
    if option in plan.explicit:
        where = f"{plan.explicit_key}.{option}"
    elif option in plan.names:
        where = plan.names[option]
    elif "*" in plan.names:
        where = f"{plan.names['*']}.{option}"
    else:  # an argument the stack derived (default_timeout...): name the backend
        return f"{plan.type_key}={plan.type!r}: {option}={shown}: {problem.text}"
    return f"{where}={shown}: {problem.text}"


def rejected(
    plan: TierPlan, backend_cls: type[Backend], exc: Exception, options: Mapping[str, Any]
) -> str:
    """Describe a backend's refusal of its arguments as a problem naming the setting at fault."""
    name, text = backend_cls.__qualname__, str(exc)
    explicit = plan.explicit

    def mentioned(option: str) -> bool:
        return re.search(rf"\b{re.escape(option)}\b", text) is not None

    if explicit and (isinstance(exc, TypeError) or any(map(mentioned, explicit))):
        accepted = ", ".join(inspect.signature(backend_cls).parameters)
        return (
            f"{plan.explicit_key}={shown_options(explicit)!r}: {name} rejects these arguments"
            f" ({exc}); it accepts: {accepted}"
        )
    detail = (
        f"{exc}; give a path this process can create and write to"
        if isinstance(exc, OSError)
        else text
    )
    shown = shown_options(options, backend_cls.options_model)
    filename = getattr(exc, "filename", None)
    generic = {
        "key_prefix": "CACHE_KEY_PREFIX",
        "secret_key": "CACHE_SECRET_KEY",
        "serializer": "CACHE_SERIALIZER",
        "default_timeout": "LOCALCACHE_DEFAULT_TIMEOUT"
        if plan.prefix == "LOCALCACHE_"
        else "CACHE_DEFAULT_TIMEOUT",
    }
    # The option the message names first is the one at fault ("key_prefix 'a{' has...").
    candidates = []
    for option, where in {**plan.names, **generic}.items():
        if option not in options:
            continue
        found = re.search(rf"\b{re.escape(option)}\b", text)
        if found is not None or (filename and filename == options[option]):
            candidates.append((found.start() if found else len(text), option, where))
    if candidates:
        _, option, where = min(candidates)
        return f"{where}={shown[option]!r}: {name} refuses it: {detail}"
    return f"{plan.type_key}={plan.type!r}: {name} cannot be built from the settings: {detail}"


def installed_option_keys() -> dict[str, list[str]]:
    """Return every flat key an installed backend or plugin declares, with its owners.

    This imports every installed backend: it runs only to explain a key no tier takes.
    """
    from stratacache.reference import option_reference

    return {key: list(found.owners) for key, found in option_reference().items()}


def _tiers_in_use(tiers: Iterable[Tier]) -> str:
    return ", ".join(f"{t.name}={t.config.type}" for t in tiers)


def leftover_problems(
    settings: CacheSettings, keys: Mapping[str, Any], consumed: set[str], tiers: list[Tier]
) -> list[str]:
    """Explain the backend keys no tier took.

    Given explicitly (``configure()`` arguments, a mapping), each is an error. From the
    environment or ``.env`` they are one warning (unless ``CACHE_WARN_UNKNOWN_ENV`` is
    false): deployments carry leftovers; the variables Kubernetes injects for a Service
    named ``cache`` or ``cache-redis`` are left out. Beside
    ``CACHE_LAYERS``, a backend's flat key is an error whatever its source.
    """
    leftovers = [k for k in keys if k not in consumed]
    problems: list[str] = []
    layers = settings.cache_layers is not None
    if layers:
        problems += [
            f"{key}: a per-layer key beside CACHE_LAYERS; remove {key}, and give the tiers"
            " their backends and options in CACHE_LAYERS (its timeout per tier)"
            for key in sorted(settings.PER_LAYER_KEYS)
            if settings.explicit(key)
        ]
    if not leftovers:
        return problems
    sources = settings.backend_key_sources()
    known = installed_option_keys()
    in_use = _tiers_in_use(tiers)
    ignored: list[str] = []
    for key in leftovers:
        explicit = sources.get(key) in _EXPLICIT_SOURCES
        value = settings.backend_keys_masked()[key]
        if not explicit and (
            _injected(key, settings.backend_keys[key])
            or (key not in known and is_kubernetes_service_link(key))
        ):
            continue  # Kubernetes' service links for a Service named cache or cache-redis
        if layers and key in known:
            problems.append(
                f"{key}={value!r}: a per-layer key beside CACHE_LAYERS; remove {key}, and give"
                " the option in the tier spec of the backend that takes it"
            )
        elif key in known:
            line = (
                f"{key}={value!r}: an option of {', '.join(known[key])}, but no tier uses"
                f" {'it' if len(known[key]) == 1 else 'them'} (tiers in use: {in_use})"
            )
            if explicit:
                problems.append(f"{line}; remove it, or configure a tier that takes it")
            else:
                ignored.append(line)
        else:
            every = list(settings.keys()) + list(known)
            close = closest_key(key, every)
            hint = f"did you mean {close}?" if close else f"known keys: {', '.join(every)}"
            if explicit:
                problems.append(f"{key}: unknown configuration key; {hint}")
            else:
                ignored.append(f"{key}: unknown configuration key; {hint}")
    if ignored and settings.cache_warn_unknown_env:
        logger.warning(
            "ignoring configuration keys from the environment that no tier takes: %s",
            "; ".join(ignored),
        )
    return problems


_warned_unsigned = False


def check_signing(tier: Tier, settings: CacheSettings) -> None:
    """Warn once per process when a tier reads pickles from outside the process unsigned.

    Raises:
        ConfigurationError: ``CACHE_SECRET_KEY`` is set but a tier keeps bytes outside the
            process and did not take the key: it would store unsigned payloads.
    """
    global _warned_unsigned
    backend = tier.cache
    if backend.in_process:
        return
    if settings.cache_secret_key and backend.signer is None:
        which = "shared backend" if tier.name == "shared" else f"backend of tier {tier.name!r}"
        raise ConfigurationError(
            [
                f"CACHE_SECRET_KEY is set, but the {which} {tier.config.type}"
                f" ({type(backend).__qualname__}) does not take a secret_key, so it would store"
                " unsigned payloads; use a backend that signs (RedisCache, FileSystemCache...),"
                " or make this one accept secret_key and store through Backend.dump_value and"
                ' load_value (stratacache docs, page "Signed payloads")'
            ]
        )
    if _warned_unsigned or backend.signer is not None or settings.cache_serializer != "pickle":
        return
    _warned_unsigned = True
    which = "the shared layer" if tier.name == "shared" else f"the tier {tier.name!r}"
    logger.warning(
        "%s (%s) stores pickles without a signature: whoever can write to it can run code"
        " in this process. Set CACHE_SECRET_KEY (a secret, or a JSON list of secrets to"
        " rotate them) and every payload is signed with HMAC-SHA256, and an unsigned one is"
        ' never unpickled (stratacache docs, page "Signed payloads").',
        which,
        type(backend).__name__,
    )
