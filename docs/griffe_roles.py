"""A griffe extension: the docstrings' Sphinx roles become links of the API reference.

The docstrings cross-reference in the reStructuredText way (``:class:`CacheStack```,
``:meth:`~stratacache.CacheStack.configure```, ``:func:`title <target>```), which is what
``help()`` and an IDE show as they are. mkdocstrings renders docstrings as Markdown, where a
role is plain text; this extension rewrites each role into an autorefs cross-reference to
``stratacache.stack.CacheStack``, its target resolved the way Python would resolve the name
where the docstring is (the module's imports, the class's members). It links to the object's
page, or shows as code when the object has none (a private module, a helper). A name that
resolves to nothing is reported, which makes ``mkdocs build --strict`` fail, as a broken link
does.

Loaded by mkdocs.yml (``extensions`` of the python handler of mkdocstrings).
"""

from __future__ import annotations

import builtins
import html
import re
from collections.abc import Iterator
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|data|exc|mod|obj|const):"
    r"`(?P<tilde>~?)(?P<body>[^`<]+?)(?:\s*<(?P<target>[^`>]+)>)?`"
)

OURS = frozenset({"stratacache", "stratacache_plugins"})
"""The packages whose objects have pages here; other names (the standard library, pydantic)
are shown as code: the site reads offline, so it has no other project's inventory."""

LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
"""reStructuredText's ``text::`` before an indented block: a colon (the block is code in
Markdown too)."""


def _absolute(obj: griffe.Object, name: str) -> str:
    """Turn a relative name (``.files.PlantedFileError``) into a full path, as an import would."""
    dots = len(name) - len(name.lstrip("."))
    if not dots:
        return name
    module = obj.module
    package = module.path if module.is_init_module else module.parent.path  # type: ignore[union-attr]
    for _ in range(dots - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name[dots:]}"


def _class_of(obj: griffe.Object) -> griffe.Class | None:
    """``obj`` if it is a class, the class ``obj`` is a member of, or ``None``."""
    cls = obj if obj.is_class else obj.parent
    return cls if isinstance(cls, griffe.Class) else None


def _inherited(obj: griffe.Object, name: str) -> str | None:
    """The path of ``name`` inherited by the class of ``obj`` from one of our classes."""
    cls = _class_of(obj)
    try:
        member = cls.all_members.get(name) if cls is not None else None
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    if member is None:
        return None
    return member.target_path if member.is_alias else member.path  # where it is defined


def _inherited_from_elsewhere(obj: griffe.Object) -> bool:
    """Whether the class of ``obj`` (or ``obj``, a class) has a base from another project."""
    cls = _class_of(obj)
    return cls is not None and any(
        str(getattr(base, "canonical_path", base)).partition(".")[0] not in OURS
        for base in cls.bases
    )


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """Return the full path of ``name`` (``Tier``, ``CacheStack.configure``) seen from ``obj``.

    ``None`` when ``name`` names nothing there: a broken reference.
    """
    name = _absolute(obj, name)
    head, dot, rest = name.partition(".")
    try:
        path = f"{obj.resolve(head)}{dot}{rest}"
    except griffe.NameResolutionError:
        if inherited := _inherited(obj, head):  # as ``self.name`` finds it
            return f"{inherited}{dot}{rest}"
        path = name  # a full path (``stratacache.NO_VALUE``), a built-in, an inherited method
        elsewhere = head not in OURS and (
            dot or hasattr(builtins, head) or _inherited_from_elsewhere(obj)
        )
        if head not in OURS and not elsewhere:
            return None
    if path.partition(".")[0] in obj.modules_collection.members:  # verified when loaded
        try:
            obj.modules_collection[path]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    return path


def rewrite(text: str, obj: griffe.Object) -> str:
    """Return ``text`` with every Sphinx role replaced by a cross-reference, ``::`` by ``:``.

    A reference to one of our objects links to its page when it has one, and is shown as
    code otherwise (a private module, a helper); a reference to another project's object is
    shown as code; a reference that names nothing is reported, which fails the strict build.
    """

    def link(match: re.Match[str]) -> str:
        body = match["body"].strip()
        target = (match["target"] or body).strip().removesuffix("()")
        title = body.rpartition(".")[2] if match["tilde"] else body
        path = _resolve(obj, target)
        if path is None:
            griffe.logger.warning(
                f"{obj.path}: {match[0]} names nothing {obj.path} can see: give its full path"
            )
        if path is None or path.partition(".")[0] not in OURS:
            return f"`{title}`"
        return f'<autoref identifier="{path}" optional><code>{html.escape(title)}</code></autoref>'

    return LITERAL.sub(":", ROLE.sub(link, text))


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


class SphinxRoles(griffe.Extension):
    """Rewrite the Sphinx roles of every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and of everything it defines."""
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value, obj)
