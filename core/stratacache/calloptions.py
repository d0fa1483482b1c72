"""The call options of ``cached_for``: ``unless=``, ``cache_if=`` and ``tags=``.

* ``unless=lambda user: user.is_admin``: a callable over the call's bound arguments (it
  takes the parameters it names, see :func:`~stratacache.keyoptions.over_arguments`); when
  it returns true, the call reads no tier and writes none.
* ``cache_if=lambda result: result is not None``: a predicate on the computed result;
  when false, the result is returned and not stored (counted as ``not_cached``).
* ``tags=["user:{user_id}"]``: see :mod:`stratacache.tags`.

They are checked at decoration, and compiled in only when given: a function without them
has the plain hot path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stratacache.keyoptions import bind_arguments, over_arguments
from stratacache.tags import TagTemplates, check_tags

__all__ = ["CallOptions"]


@dataclass(frozen=True)
class CallOptions:
    """The call options of one decorated function, checked against its signature.

    Attributes:
        unless: ``skip(args, kwargs) -> bool``, or ``None``.
        cache_if: The predicate on results, or ``None``.
        tags: The function's :class:`~stratacache.tags.TagTemplates`, or ``None``.
    """

    unless: Callable[[tuple[Any, ...], Any], bool] | None = None
    cache_if: Callable[[Any], bool] | None = None
    tags: TagTemplates | None = None

    @classmethod
    def checked(
        cls,
        func: Callable[..., Any],
        *,
        unless: Callable[..., Any] | None,
        cache_if: Callable[[Any], Any] | None,
        tags: Sequence[str] | None,
        atomic: str | None = None,
    ) -> CallOptions:
        """Check the options against ``func``'s signature; return them compiled.

        Raises:
            TypeError: An option of the wrong type.
            ValueError: A tag template field, or a parameter ``unless`` takes, that is not
                a parameter of ``func``.
        """
        signature = inspect.signature(func)
        params = list(signature.parameters)
        skip = None
        if unless is not None:
            adapted = over_arguments("unless", unless, params)
            bind = bind_arguments(signature)

            def skip(args: tuple[Any, ...], kwargs: Any) -> bool:
                return bool(adapted(bind(args, kwargs)))

        if cache_if is not None and not callable(cache_if):
            raise TypeError(
                f"cached_for: cache_if must be a predicate on the result, got {cache_if!r};"
                " write e.g. cache_if=lambda result: result is not None"
            )
        templates = check_tags(tags)
        return cls(
            skip,
            cache_if,
            TagTemplates(templates, signature) if templates else None,
        )
