"""Tags: ``cached_for(tags=["user:{user_id}"])`` and ``invalidate_tags("user:42")``.

A tag template is a :meth:`str.format` template over the function's bound arguments,
checked at decoration (a field that is not a parameter raises :class:`ValueError` there).
Each entry a tagged function writes carries its rendered tags, in every tier it is written
to, fills included. :meth:`CacheStack.invalidate_tags
<stratacache.CacheStack.invalidate_tags>` asks every tier to remove every entry carrying a
tag (the backend contract: :meth:`Backend.set_tagged <stratacache.Backend.set_tagged>` and
:meth:`Backend.invalidate_tag <stratacache.Backend.invalidate_tag>`), whatever function
wrote it. The rule is written once (:func:`invalidate_tags_rule`) and run by
:func:`~stratacache.driver.drive` or :func:`~stratacache.driver.adrive`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stratacache.driver import Rule, adrive, drive
from stratacache.keyoptions import bind_arguments, template_fields

if TYPE_CHECKING:
    from collections.abc import Callable

    from stratacache.state import StackState
    from stratacache.tier import Tier

__all__ = ["TagOperations", "TagTemplates", "check_names", "check_tags", "invalidate_tags_rule"]


class TagTemplates:
    """The tag templates of one decorated function, rendered per call.

    Args:
        templates: The templates (``"user:{user_id}"``; a tag without fields is constant).
        signature: The function's signature, which the fields must name.

    Raises:
        ValueError: A template names a field that is not a parameter.
    """

    def __init__(self, templates: tuple[str, ...], signature: inspect.Signature) -> None:
        params = list(signature.parameters)
        for template in templates:
            template_fields("tags", template, params)
        self.templates = templates
        self._bind = bind_arguments(signature)

    def render(self, args: tuple[Any, ...], kwargs: Any) -> tuple[str, ...]:
        """Return the tags of the call ``func(*args, **kwargs)``."""
        arguments = self._bind(args, kwargs)
        return tuple(template.format(**arguments) for template in self.templates)


def check_tags(tags: Sequence[str] | None) -> tuple[str, ...]:
    """Return the templates of ``cached_for(tags=...)`` as a tuple, checking their type.

    Raises:
        TypeError: ``tags`` is a string, or holds something else than strings.
    """
    if tags is None:
        return ()
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise TypeError(
            f"cached_for: tags must be a list of non-empty tag templates, got {tags!r};"
            ' write e.g. tags=["user:{user_id}"]'
        )
    return tuple(tags)


def check_names(tags: tuple[Any, ...], what: str) -> tuple[str, ...]:
    """Check the tags given to ``invalidate_tags``: non-empty strings.

    Raises:
        TypeError: A tag that is not a non-empty string (a list passed as one argument).
    """
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise TypeError(
                f"{what} takes tags as separate non-empty strings, got {tag!r}; write"
                ' e.g. invalidate_tags("user:42", "team:7")'
            )
    return tags


def invalidate_tags_rule(tiers: tuple[Tier, ...], tags: tuple[str, ...]) -> Rule[int]:
    """Remove every entry carrying one of ``tags`` from every tier; return how many went."""
    removed = 0
    for tag in tags:
        for tier in tiers:
            removed += int((yield (tier, "invalidate_tag", (tag,))))
    return removed


class TagOperations:
    """:class:`~stratacache.CacheStack`'s ``invalidate_tags`` and ``ainvalidate_tags``."""

    # CacheStack's, declared for the type checker only.
    _layers: Callable[[], StackState]
    _calls: Any

    def _tagged_rule(self, tags: tuple[str, ...], what: str) -> Rule[int]:
        check_names(tags, what)
        for call in list(self._calls):
            if call.tags is not None:  # a computation running now must not write it back
                call.guard.invalidate_all()
        return invalidate_tags_rule(self._layers().every, tags)

    def invalidate_tags(self, *tags: str) -> int:
        """Remove every entry carrying one of ``tags`` from every tier; return how many went.

        The entries of every function decorated with ``tags=[...]`` whose rendered tags
        include one of them go, in every tier; the tagged functions computing right now do
        not write their results back. What it costs depends on each tier's backend: one
        round trip per tag on a single Redis server, a fan-out over the tagged functions on
        a Redis Cluster (see :doc:`the decorator docs </decorator>`).
        """
        return drive(self._tagged_rule(tags, "invalidate_tags"))

    async def ainvalidate_tags(self, *tags: str) -> int:
        """``invalidate_tags``, awaited (Redis tiers through a worker thread)."""
        return await adrive(self._tagged_rule(tags, "ainvalidate_tags"))
