"""The stack a command operates: the ``--app``'s, or one built from the environment."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from stratacache.cli._output import EXIT_CONFIG, EXIT_FAILED, fail
from stratacache.errors import ConfigurationError, PluginError
from stratacache.stack import CacheStack

if TYPE_CHECKING:
    from stratacache.tier import Tier

__all__ = ["APP_KEY", "local_note", "operated_stack", "split_tiers"]

APP_KEY = "stratacache.app"


def _resolve(found: Any, spec: str) -> CacheStack:
    """The stack behind what ``--app`` named: a stack, a Flask app, a Cache, or a factory."""
    from stratacache.stack import CacheStack

    for _ in range(2):  # a factory is called once
        if isinstance(found, CacheStack):
            return found
        extensions = getattr(found, "extensions", None)  # a Flask application
        if isinstance(extensions, dict) and "stratacache" in extensions:
            found = extensions["stratacache"]
        if isinstance(getattr(found, "stack", None), CacheStack):  # stratacache.flask.Cache
            return found.stack  # type: ignore[no-any-return]
        if callable(found) and extensions is None:
            try:
                found = found()
            except TypeError as exc:  # a factory that wants arguments
                raise click.BadParameter(
                    f"calling {spec!r} failed: {exc}", param_hint="'--app'"
                ) from exc
            continue
        break
    raise click.BadParameter(
        f"{spec!r} is {type(found).__name__}, not a CacheStack, a Flask application with"
        " stratacache.flask's Cache, or a callable returning one of them",
        param_hint="'--app'",
    )


def _app_stack(spec: str) -> CacheStack:
    """Import the application ``module[:attr]`` (the working directory first on the path)."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {exc}", param_hint="'--app'"
        ) from exc
    if not attr:  # importing the module configured the process-wide stack
        import stratacache

        return stratacache.cache
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attr!r}", param_hint="'--app'"
            ) from None
    return _resolve(found, spec)


def operated_stack() -> CacheStack:
    """The stack to operate: the --app's, or built from the environment; exit 2 if invalid."""
    ctx = click.get_current_context()
    spec = ctx.find_root().meta.get(APP_KEY)
    try:
        if spec:
            stack = _app_stack(spec)
            stack._layers()  # configured by the application, or else from the environment
        else:
            stack = CacheStack()
            stack.configure()
    except (ConfigurationError, PluginError) as exc:
        problems = getattr(exc, "problems", [str(exc)])
        fail(str(exc), EXIT_CONFIG, problems=problems)
    except OSError as exc:  # a directory that cannot be created, say
        fail(f"cannot build the layers: {exc}", EXIT_FAILED)
    return stack


def split_tiers(stack: CacheStack) -> tuple[list[Tier], list[Tier]]:
    """The tiers shared between processes (the deepest always), and the per-process ones."""
    state = stack._layers()
    shared = [t for t in state.every if not t.cache.in_process or t is state.shared]
    return shared, [t for t in state.every if t not in shared]


def local_note(local: Sequence[Tier]) -> str:
    names = ", ".join(f"{t.name} ({type(t.cache).__name__})" for t in local)
    return (
        f"Local tiers are per process, each application process has its own: {names}."
        if local
        else ""
    )
