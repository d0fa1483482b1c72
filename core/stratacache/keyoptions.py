"""The key options of ``cached_for``: ``key=``, ``ignore=``, ``version=`` and ``key_self=``.

They change only the argument part of a key (see :mod:`stratacache.keys`): the function's
name, in braces, stays its Redis Cluster hash tag, and a backend's prefix stays in front.

* ``key="{user_id}:{lang}"``: a :meth:`str.format` template over the bound arguments
  (attributes and items allowed: ``{user.id}``), or a callable taking the arguments it
  names (see :func:`over_arguments`) and returning a string. The key is then
  ``{module.qualname}:<text>``.
* ``ignore=["session"]``: parameters left out of the key (a db session, a logger).
* ``version=2``: part of every key, ``{module.qualname}@v2(...)``: bumping it retires the
  old entries (they expire on their own) without a clear.
* ``key_self=lambda self: self.id``: how a method's instance enters its keys.

Every option is checked at decoration: a template field or an ignored name that is not a
parameter, a template naming no argument, and options that contradict each other raise
:class:`ValueError` there, naming the option, the value and what to write instead.
"""

from __future__ import annotations

import difflib
import inspect
import string
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Arguments", "KeyOptions", "bind_arguments", "over_arguments", "template_fields"]

Arguments = dict[str, Any]
"""A call's arguments bound to the function's parameters, defaults applied."""

_ADAPTED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def bind_arguments(signature: inspect.Signature) -> Callable[[tuple[Any, ...], Any], Arguments]:
    """Return ``bind(args, kwargs)``: the call's arguments by parameter name, defaults in.

    Raises (from ``bind``):
        TypeError: The arguments do not fit the signature.
    """

    def bind(args: tuple[Any, ...], kwargs: Any) -> Arguments:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    return bind


def _suggest(name: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parameters_text(names: Collection[str]) -> str:
    return ", ".join(names) if names else "none"


def template_fields(option: str, template: str, parameters: Collection[str]) -> tuple[str, ...]:
    """Return the parameters a :meth:`str.format` template names, checking each.

    Raises:
        ValueError: The template is malformed, has a positional field (``{}``, ``{0}``),
            or names a field that is not one of ``parameters``.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"cached_for: {option} template {template!r} is malformed: {exc}"
        ) from None
    fields: list[str] = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if not root or root.isdigit():
            raise ValueError(
                f"cached_for: {option} template {template!r} has a positional field"
                f" {{{field}}}; name a parameter instead, e.g. {{{next(iter(parameters), 'x')}}}"
            )
        if root not in parameters:
            raise ValueError(
                f"cached_for: {option} template {template!r} names {root!r}, which is not a"
                f" parameter of the function{_suggest(root, parameters)}; its parameters:"
                f" {_parameters_text(parameters)}"
            )
        fields.append(root)
    return tuple(fields)


def over_arguments(
    option: str, func: Callable[..., Any], parameters: Collection[str]
) -> Callable[[Arguments], Any]:
    """Adapt ``func`` to be called with a call's bound arguments (``key=``, ``unless=``).

    ``func`` receives, by keyword, the parameters it names (``lambda user_id: ...``), or
    every argument if it takes ``**kwargs``.

    Raises:
        TypeError: ``func`` is not callable.
        ValueError: ``func`` requires a parameter the function does not have.
    """
    if not callable(func):
        raise TypeError(
            f"cached_for: {option} must be a callable over the function's arguments, got"
            f" {func!r}; write e.g. {option}=lambda user_id: ..."
        )
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature (a builtin): give it every argument
        return lambda arguments: func(**arguments)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return lambda arguments: func(**arguments)
    named: list[str] = []
    for p in params:
        if p.kind not in _ADAPTED:
            raise ValueError(
                f"cached_for: {option}={func!r} takes *{p.name} or a positional-only"
                f" parameter; it is called with the function's arguments by name: give it"
                f" parameters named like the function's ({_parameters_text(parameters)})"
            )
        if p.name in parameters:
            named.append(p.name)
        elif p.default is inspect.Parameter.empty:
            raise ValueError(
                f"cached_for: {option}={func!r} takes {p.name!r}, which is not a parameter of"
                f" the function{_suggest(p.name, parameters)}; its parameters:"
                f" {_parameters_text(parameters)}"
            )
    names = tuple(named)
    return lambda arguments: func(**{name: arguments[name] for name in names})


@dataclass(frozen=True)
class KeyOptions:
    """The key options of one decorated function, checked (see the module docstring).

    Attributes:
        key: A template or a callable giving the argument part, or ``None``.
        ignore: Parameters left out of the key.
        version: Part of every key, or ``None``.
        key_self: How the instance of a method enters its keys, or ``None``.
    """

    key: str | Callable[..., Any] | None = None
    ignore: tuple[str, ...] = ()
    version: str | int | None = None
    key_self: Callable[[Any], Any] | None = None

    @classmethod
    def checked(
        cls,
        *,
        key: str | Callable[..., Any] | None,
        ignore: Sequence[str] | None,
        version: str | int | None,
        key_self: Callable[[Any], Any] | None,
    ) -> KeyOptions:
        """Check the options that need no function (types, contradictions); return them.

        Raises:
            TypeError: An option of the wrong type.
            ValueError: Options that contradict each other.
        """
        if ignore is not None and (
            isinstance(ignore, str) or not all(isinstance(n, str) for n in ignore)
        ):
            raise TypeError(
                f"cached_for: ignore must be a list of parameter names, got {ignore!r};"
                ' write e.g. ignore=["session"]'
            )
        if version is not None and (
            isinstance(version, bool)
            or not isinstance(version, str | int)
            or (isinstance(version, str) and (not version or set(version) & set("{}")))
        ):
            raise TypeError(
                f"cached_for: version must be an int or a non-empty string without braces,"
                f" got {version!r}; write e.g. version=2"
            )
        if key_self is not None and not callable(key_self):
            raise TypeError(
                f"cached_for: key_self must be a callable taking the instance, got"
                f" {key_self!r}; write e.g. key_self=lambda self: self.id"
            )
        if key is not None and not isinstance(key, str) and not callable(key):
            raise TypeError(
                f"cached_for: key must be a str.format template or a callable, got {key!r};"
                ' write e.g. key="{user_id}"'
            )
        if key is not None and ignore:
            raise ValueError(
                f"cached_for: key={key!r} replaces the whole argument part of the key, so"
                f" ignore={list(ignore)!r} has nothing to leave out; give one of them"
            )
        if key is not None and key_self is not None:
            raise ValueError(
                f"cached_for: key={key!r} replaces the whole argument part of the key, self"
                " included, so key_self has no effect; give one of them (a template can"
                " name self: key='{self.id}:{x}')"
            )
        return cls(key, tuple(ignore or ()), version, key_self)

    @property
    def customized(self) -> bool:
        """Whether any option changes the key."""
        return self != _DEFAULT

    def argument_part(
        self, signature: inspect.Signature, encode: Callable[[Any], str]
    ) -> Callable[[tuple[Any, ...], Any], str] | None:
        """Return ``part(args, kwargs)``, what follows the function's name, or ``None``.

        ``None`` means the default argument part (:class:`~stratacache.keys.KeyBuilder`'s
        own). ``part`` returns the version and the argument text; values left to the
        default form are encoded with ``encode`` (:func:`stratacache.keys.encode_value`).

        Raises:
            ValueError: An option names what the signature lacks (see the module docstring).
        """
        if not self.customized:
            return None
        params = list(signature.parameters)
        self._check_against(params)
        version = "" if self.version is None else f"@v{self.version}"
        bind = bind_arguments(signature)
        key = self.key
        if isinstance(key, str):
            template = key
            return lambda args, kwargs: f"{version}:{template.format(**bind(args, kwargs))}"
        if key is not None:
            custom = over_arguments("key", key, params)
            return lambda args, kwargs: f"{version}:{_text(custom(bind(args, kwargs)))}"
        ignored, key_self = frozenset(self.ignore), self.key_self
        keyed_self = key_self is not None

        def part(args: tuple[Any, ...], kwargs: Any) -> str:
            arguments = bind(args, kwargs)
            values = [v for n, v in arguments.items() if n not in ignored]
            if keyed_self and key_self is not None:
                values[0] = _KeyedSelf(key_self(arguments["self"]))
            return version + encode(tuple(values))

        return part

    def _check_against(self, params: list[str]) -> None:
        for name in self.ignore:
            if name not in params:
                raise ValueError(
                    f"cached_for: ignore names {name!r}, which is not a parameter of the"
                    f" function{_suggest(name, params)}; its parameters: {_parameters_text(params)}"
                )
        if self.key_self is not None:
            if not params or params[0] != "self":
                raise ValueError(
                    "cached_for: key_self is for methods, whose first parameter is self; this"
                    f" function's parameters are: {_parameters_text(params)}"
                )
            if "self" in self.ignore:
                raise ValueError(
                    "cached_for: ignore=['self'] leaves the instance out of the key, so"
                    " key_self has no effect; give one of them"
                )
        if isinstance(self.key, str) and not template_fields("key", self.key, params):
            raise ValueError(
                f"cached_for: key template {self.key!r} names no argument, so every call"
                " would share one entry; name the parameters that tell calls apart, e.g."
                f" key='{{{params[0] if params else 'x'}}}'"
            )


_DEFAULT = KeyOptions()


class _KeyedSelf:
    """A method's instance, keyed by what ``key_self`` returned for it."""

    __slots__ = ("ident",)

    def __init__(self, ident: Any) -> None:
        self.ident = ident

    def __cache_key__(self) -> Any:
        return self.ident


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"cached_for: key= returned {value!r}, a {type(value).__name__}; it must return a"
            " str (the argument part of the key), e.g. key=lambda user_id: str(user_id)"
        )
    return value
