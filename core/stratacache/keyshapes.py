"""Key functions spelt out for the common call shapes: one or two positional arguments.

Part of :mod:`stratacache.keys`, whose docstring states the key contract. A function whose
parameters are one or two positional ones without defaults gets, at decoration time, a key
function that handles a call of plain values (``str``, ``int``, ``float``, ``bool``,
``None``, ``bytes``: their ``repr`` is their key text) passed positionally in a few
instructions, and hands every other call
to the general one, which gives the same key for the same call: only the cost differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Build", "specialised"]

Build = Callable[[tuple[Any, ...], dict[str, Any]], str]
"""``build(args, kwargs) -> key``."""


def specialised(name: str, arity: int, general: Build, plain: frozenset[type], limit: int) -> Build:
    """Return the key function of a function named ``name`` (in braces) of ``arity`` params.

    Args:
        name: The function's part of every key, braces included.
        arity: 1 or 2: the number of its parameters, all positional, without defaults.
        general: The general key function, which every other call goes to.
        plain: The types whose ``repr`` is their canonical text in a key.
        limit: The longest key kept verbatim (longer ones go to ``general``).
    """
    prefix = name + "("
    if arity == 1:

        def one(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if not kwargs and len(args) == 1:
                value = args[0]
                if type(value) in plain:
                    key = f"{prefix}{value!r},)"  # the text of repr((value,))
                    if len(key) <= limit:
                        return key
            return general(args, kwargs)

        return one

    def two(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if not kwargs and len(args) == 2:
            first, second = args
            if type(first) in plain and type(second) in plain:
                key = f"{prefix}{first!r}, {second!r})"
                if len(key) <= limit:
                    return key
        return general(args, kwargs)

    return two
