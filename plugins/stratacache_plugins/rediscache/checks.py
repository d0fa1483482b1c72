"""What redis-py would refuse on the first call, found at construction instead.

redis-py builds its connections lazily: an option it does not take, a query parameter it
cannot parse, or a TLS option on a plain connection fails on every call, never at start-up.
:func:`connection_problems` checks them when the backend is built, against redis-py's own
signatures (read with :mod:`inspect`, so a new redis-py release brings its own options), and
refuses what breaks stratacache's contract (``decode_responses``: entries are bytes).
"""

from __future__ import annotations

import codecs
import difflib
import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, Union, cast, get_args, get_origin
from urllib.parse import parse_qs, urlsplit

import redis
from redis.cluster import RedisCluster
from redis.connection import (
    FALSE_STRINGS,
    URL_QUERY_ARGUMENT_PARSERS,
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    to_bool,
)

from stratacache.masking import is_secret_name, mask_url
from stratacache.options import OptionProblem
from stratacache_plugins.rediscache.options import (
    RedisCacheOptions,
    check_host_name,
    check_redis_url,
)

__all__ = ["cluster_prefix_problems", "connection_problems", "parameters"]

_CONNECTIONS: dict[str, type[Any]] = {
    "redis": Connection,
    "rediss": SSLConnection,
    "unix": UnixDomainSocketConnection,
}
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_SIMPLE = (bool, int, float, str)
_TRUE_STRINGS = ("1", "T", "TRUE", "Y", "YES")
_TIMEOUTS = {"socket_timeout": "read_timeout", "socket_connect_timeout": "connect_timeout"}
_OURS = ("check_connection",)  # taken by RedisClient itself, never given to redis-py
_CHOSEN = {"path": "a socket's path is the path of the unix:// URL, e.g. unix:///run/redis.sock"}
_BOUNDS = {  # redis-py's numbers that it checks late or never: (least, most)
    "max_connections": (1, 1_000_000),
    "health_check_interval": (0, 86_400),
    "socket_read_size": (1, 1 << 30),
    "protocol": (2, 3),
}


_parameters: dict[type[Any], dict[str, inspect.Parameter]] = {}


def parameters(connection_class: type[Any]) -> dict[str, inspect.Parameter]:
    """Every argument a pool of ``connection_class`` connections takes, by name.

    Those of ``redis.ConnectionPool`` and of the connection class, through the ``**kwargs``
    each passes on to its bases (read once per class).
    """
    if connection_class in _parameters:
        return _parameters[connection_class]
    found: dict[str, inspect.Parameter] = {}
    for cls in (redis.ConnectionPool, connection_class):
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            params = list(inspect.signature(init).parameters.values())[1:]  # not self
            found.update((p.name, p) for p in params if p.kind not in _VARIADIC)
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                break
    _parameters[connection_class] = found
    return found


def _own_arguments(backend: type[Any]) -> set[str]:
    """The named constructor arguments of ``backend``, through its bases' ``**kwargs``."""
    return set(_OURS) | set(backend.constructor_arguments())


def _types(param: inspect.Parameter) -> tuple[tuple[type[Any], ...], bool] | None:
    """The simple types ``param`` takes and whether it takes None; None if not simple."""
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return ((bool,), False) if isinstance(param.default, bool) else None
    members = (
        get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType)
        else (annotation,)
    )
    takes_none = type(None) in members
    rest = tuple(m for m in members if m is not type(None))
    if not rest or not all(m in _SIMPLE for m in rest):
        return None
    return rest, takes_none


_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _type_problem(name: str, value: Any, param: inspect.Parameter) -> str | None:
    found = _types(param)
    if found is None:
        return None
    kinds, takes_none = found
    if value is None:
        return None if takes_none else f"redis-py's {name} cannot be None"
    if isinstance(value, bool):
        ok = bool in kinds
    elif isinstance(value, int):
        ok = int in kinds or float in kinds
    else:
        ok = isinstance(value, kinds)
    if ok:
        return None
    wanted = " or ".join(_KINDS[k] for k in kinds)
    text = f"redis-py takes {wanted} for {name}, not a {type(value).__name__}"
    return text + ("; give the value itself, not text" if isinstance(value, str) else "")


def _contract_problem(name: str, value: Any) -> str | None:
    """What in ``value`` for redis-py's ``name`` breaks stratacache's own contract."""
    if name == "decode_responses" and value:
        return (
            "stratacache stores bytes (pickles, signed payloads), so replies decoded to text"
            " fail every read, and unreadable entries are deleted; remove decode_responses"
        )
    if name in ("encoding", "encoding_errors") and value is not None:
        ours = "utf-8" if name == "encoding" else "surrogatepass"
        try:
            same = codecs.lookup(value).name == ours if name == "encoding" else value == ours
        except (LookupError, TypeError):
            same = False
        if not same:
            return (
                f"keys are encoded with {ours!r}, as every stratacache backend hashes them, so"
                f" a key names the same entry in every process; remove {name}"
            )
    if name in _CHOSEN:
        return f"not to be set: {_CHOSEN[name]}"
    return None


def _value_problem(name: str, value: Any, param: inspect.Parameter) -> str | None:
    """What is wrong with ``value`` for redis-py's ``name``: our contract, types, bounds."""
    problem = _contract_problem(name, value) or _type_problem(name, value, param)
    if problem is None and name in _BOUNDS and isinstance(value, int):
        least, most = _BOUNDS[name]
        if not least <= value <= most:
            problem = f"redis-py's {name} must be from {least} to {most}"
    return problem


def _timeout_problem(name: str, value: Any) -> str | None:
    """A redis-py socket timeout, held to the bounds of its stratacache twin."""
    if value is None:
        return "None would wait forever for a dead server; give a number of seconds"
    ours = _TIMEOUTS[name]
    rejected = RedisCacheOptions.argument_problems({ours: value})
    return rejected[0].text if rejected else None


def _unknown(name: str, candidates: set[str], where: str) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"not an option of {where}{hint}"


def _query_value_problem(name: str, raw: str, param: inspect.Parameter) -> str | None:
    """What is wrong with ``raw``, the text of the query parameter ``name``."""
    if name == "retry_on_error":
        return "it takes exception classes, which a URL cannot give; remove it"
    parser = cast("Callable[[str], Any] | None", URL_QUERY_ARGUMENT_PARSERS.get(name))
    if parser is None:  # passed on as text
        text = _value_problem(name, raw, param)
        if text and _contract_problem(name, raw) is None:
            text += " (redis-py passes this query parameter on as text)"
        return text
    if parser is to_bool and raw.upper() not in (*FALSE_STRINGS, *_TRUE_STRINGS):
        return "not true or false (write true, false, yes, no, 1 or 0)"
    try:
        parsed = parser(raw)
    except (TypeError, ValueError):
        kind = "a whole number" if parser is int else "a number" if parser is float else "valid"
        return f"not {kind}, as redis-py reads it"
    if name in _TIMEOUTS:
        return _timeout_problem(name, parsed)
    return _value_problem(name, parsed, param)


def _query_problems(option: str, url: str) -> list[OptionProblem]:
    """What redis-py would refuse in the query of ``url`` (the argument ``option``)."""
    parts = urlsplit(url)
    connection = _CONNECTIONS[parts.scheme]
    known = parameters(connection)
    problems = []
    for name, values in parse_qs(parts.query).items():
        raw = values[0]  # as redis-py reads it
        if name in known:
            text = _query_value_problem(name, raw, known[name])
        elif name in parameters(SSLConnection):
            text = f"a TLS option, on a {parts.scheme}:// URL; use rediss://, or remove it"
        else:
            text = _unknown(name, set(known), f"redis-py's {connection.__name__}")
        if text:
            shown = f"{name}=(secret)" if is_secret_name(name) else f"{name}={raw!r}"
            problems.append(OptionProblem(option, url, f"its query parameter {shown}: {text}"))
    return problems


def connection_problems(
    backend: type[Any],
    *,
    host: str | redis.Redis | RedisCluster,
    url: str | None,
    server: str,
    options: Mapping[str, Any],
    timeouts: Mapping[str, Any],
) -> list[OptionProblem]:
    """Return what is wrong with the connection arguments of a Redis ``backend``.

    Args:
        backend: The backend class (its own arguments are not redis-py's).
        host: The ``host`` argument: a host name, a URL or a ready client.
        url: The ``url`` argument.
        server: The URL the pool connects to (``url``, the URL in ``host``, or one built).
        options: The arguments given on to redis-py's connection pool.
        timeouts: ``connect_timeout`` and ``read_timeout`` as given.
    """
    if isinstance(host, RedisCluster):  # a ready cluster client: our contract only
        decoding = host.get_connection_kwargs().get("decode_responses")  # type: ignore[no-untyped-call]
        text = _contract_problem("decode_responses", decoding)
        shown = "redis.RedisCluster(decode_responses=True)"
        return [OptionProblem("host", shown, f"this client: {text}")] if text else []
    if isinstance(host, redis.Redis):  # a ready client: only our contract can be checked
        kwargs = host.connection_pool.connection_kwargs
        text = _contract_problem("decode_responses", kwargs.get("decode_responses"))
        shown = "redis.Redis(decode_responses=True)"
        return [OptionProblem("host", shown, f"this client: {text}")] if text else []
    problems = RedisCacheOptions.argument_problems(dict(timeouts))
    option, name = ("url", server) if url else ("host", str(host))
    try:
        if "://" in name:
            check_redis_url(name)
        else:
            check_host_name(name)
    except ValueError as exc:
        return [*problems, OptionProblem(option, name, str(exc))]
    problems += _query_problems(option, server)
    connection = options.get("connection_class", _CONNECTIONS[urlsplit(server).scheme])
    if not (isinstance(connection, type) and issubclass(connection, AbstractConnection)):
        text = "not a redis-py connection class; leave it out: the URL's scheme chooses one"
        problems.append(OptionProblem("connection_class", connection, text))
        connection = _CONNECTIONS[urlsplit(server).scheme]
    for name, value in options.items():
        text = _option_problem(name, value, connection, backend, server)
        if text:
            problems.append(OptionProblem(name, value, text))
    return problems


def _option_problem(
    name: str, value: Any, connection: type[Any], backend: type[Any], server: str
) -> str | None:
    """What is wrong with the pool option ``name``, given for ``connection`` connections."""
    known = parameters(connection)
    if name in _TIMEOUTS:
        return _timeout_problem(name, value)
    if name in _OURS or name == "connection_class":
        return None
    if name in known:
        return _value_problem(name, value, known[name])
    if name in parameters(SSLConnection):
        return (
            f"a TLS option, but the server's URL {mask_url(server)} is not TLS; use a"
            f" rediss:// URL, or remove {name}"
        )
    where = f"{backend.__name__} nor of redis-py's {connection.__name__}"
    return _unknown(name, _own_arguments(backend) | set(known), where)


def cluster_prefix_problems(prefix: str | Callable[[], str]) -> list[OptionProblem]:
    """What is wrong with ``prefix`` as the key prefix of a Redis Cluster tier.

    A prefix with a hash tag (``{app}:``) would send every key to the one slot of ``app``,
    on one master, defeating the cluster; the decorator's keys carry their own tag (the
    function's name). A callable prefix is called per key, so it is not checked here.
    """
    if isinstance(prefix, str) and ("{" in prefix or "}" in prefix):
        return [
            OptionProblem(
                "key_prefix",
                prefix,
                "a key prefix with braces pins every key to one Cluster slot (braces mark the"
                " hash tag): remove them; each function's keys already carry their own tag",
            )
        ]
    return []
