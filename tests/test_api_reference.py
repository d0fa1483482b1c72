"""The API reference's docstrings: their Sphinx roles become links (``docs/griffe_roles.py``).

The docstrings keep reStructuredText cross-references, which ``help()`` shows as they are;
the mkdocs build rewrites each into a link to the object's page, resolved as Python resolves
the name where the docstring is. These tests read stratacache's own sources with griffe, as
the build does.
"""

from __future__ import annotations

import logging
from typing import Any

import griffe
import pytest

import stratacache

from .conftest import ROOT
from .test_docs import _generator

roles = _generator("griffe_roles")


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    loader = griffe.GriffeLoader(search_paths=[str(ROOT / "core"), str(ROOT / "plugins")])
    for name in ("stratacache", "stratacache_plugins"):
        loader.load(name)
    loader.resolve_aliases(implicit=False, external=False)
    module: Any = loader.modules_collection["stratacache"]
    return module  # type: ignore[no-any-return]


def link(path: str, title: str) -> str:
    return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'


def test_a_name_resolves_where_the_docstring_is(package: griffe.Module) -> None:
    stack = package["stack"]
    assert (
        roles.rewrite("See :class:`Tier`.", stack)
        == f"See {link('stratacache.tier.Tier', 'Tier')}."
    )


def test_a_tilde_shows_the_last_part_and_a_title_replaces_it(package: griffe.Module) -> None:
    text = ":meth:`~stratacache.CacheStack.configure` or :func:`the decorator <cached_for>`"
    assert roles.rewrite(text, package) == (
        f"{link('stratacache.CacheStack.configure', 'configure')} or"
        f" {link('stratacache.decorator.cached_for', 'the decorator')}"
    )


def test_a_method_resolves_on_its_class(package: griffe.Module) -> None:
    stats = package["stack.CacheStack.stats"]
    assert roles.rewrite(":meth:`configure`", stats) == link(
        "stratacache.stack.CacheStack.configure", "configure"
    )


def test_a_relative_module_resolves_from_its_package(package: griffe.Module) -> None:
    failures = package.modules_collection["stratacache_plugins.filesystem.failures"]
    assert roles.rewrite(":class:`~.files.PlantedFileError`", failures) == link(
        "stratacache_plugins.filesystem.files.PlantedFileError", "PlantedFileError"
    )


def test_another_projects_name_is_code_without_a_link(package: griffe.Module) -> None:
    # The site reads offline: it has no other project's inventory to link to.
    text = ":class:`TypeError`, :class:`~pydantic.SecretStr`"
    assert roles.rewrite(text, package["keys"]) == "`TypeError`, `SecretStr`"


def test_a_name_that_names_nothing_is_reported(
    package: griffe.Module, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert roles.rewrite(":class:`Tierr`", package["stack"]) == "`Tierr`"
    assert ":class:`Tierr` names nothing stratacache.stack can see" in caplog.text


def test_a_missing_member_of_our_packages_is_reported(
    package: griffe.Module, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        roles.rewrite(":meth:`CacheStack.configur`", package["stack"])
    assert "names nothing" in caplog.text


def test_a_literal_block_marker_becomes_a_colon(package: griffe.Module) -> None:
    assert roles.rewrite("Use it so::\n\n    code\n", package) == "Use it so:\n\n    code\n"


def test_a_method_inherited_from_one_of_our_classes_resolves(package: griffe.Module) -> None:
    aloads = package.modules_collection["stratacache_plugins.rediscache.awaited"]
    assert roles.rewrite(":meth:`_loads`", aloads["AwaitedRedis._aloads"]) == link(
        "stratacache_plugins.rediscache.codec.RedisCodec._loads", "_loads"
    )


def test_every_public_name_has_its_entry_in_the_reference() -> None:
    pages = "".join(page.read_text() for page in (ROOT / "docs" / "api").glob("*.md"))
    missing = [name for name in stratacache.__all__ if f"::: stratacache.{name}\n" not in pages]
    assert not missing, f"add ::: stratacache.NAME to a page of docs/api/ for {missing}"
