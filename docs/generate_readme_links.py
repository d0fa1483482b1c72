"""Rewrite the README's links to the documentation from the one ``docs_url`` setting.

    .venv/bin/python docs/generate_readme_links.py      # rewrites README.md in place

The README is also the PyPI page, where a relative link (``docs/layers.md``) or image breaks.
So it names each documentation page by its title (its first heading), between two HTML
comments, which neither GitHub nor PyPI shows, inside emphasis, so that no line starts with
a comment (a line starting with ``<!--`` is an HTML block in Markdown, not text)::

    the docs page *<!-- docs: layers.md -->Tier specs: `CACHE_LAYERS`<!-- /docs -->*

For an image (a ``.png``), the text is its description.

``docs_url`` (``[tool.stratacache]`` in ``pyproject.toml``) says where the site is published.
While it is empty, the text stays as it is: a reader finds the page by its title. Once it is
set, this script makes each mention a link to the page on the site (an image for a ``.png``),
and makes them text again if it is emptied. A test checks that the README is this script's
output, and that it has no relative link.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MENTION = re.compile(r"<!-- docs: (?P<page>\S+) -->(?P<inner>.*?)<!-- /docs -->", re.DOTALL)
LINKED = re.compile(r"!?\[(?P<text>.*)\]\((?P<url>[^)\s]*)\)", re.DOTALL)


def docs_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """Return the ``docs_url`` setting of ``pyproject.toml`` (empty: no public site yet)."""
    url: str = tomllib.loads(pyproject.read_text())["tool"]["stratacache"]["docs_url"]
    return url


def page_url(base: str, page: str) -> str:
    """Return the URL of ``page`` (a path under ``docs/``, maybe with an anchor) on the site.

    The site has mkdocs' directory URLs: ``layers.md`` is ``layers/``, ``backends/index.md``
    is ``backends/``; any other file (an image) keeps its path.
    """
    path, _, anchor = page.partition("#")
    if path.endswith(".md"):
        path = path.removesuffix(".md")
        path = "" if path == "index" else path.removesuffix("/index") + "/"
    return f"{base.rstrip('/')}/{path}" + (f"#{anchor}" if anchor else "")


def text_of(inner: str) -> str:
    """Return the text of a mention, linked or not."""
    linked = LINKED.fullmatch(inner)
    return linked["text"] if linked else inner


def render(readme: str, base: str) -> str:
    """Return ``readme`` with every mention linked to ``base``, or plain text if it is empty."""

    def one(match: re.Match[str]) -> str:
        page, text = match["page"], text_of(match["inner"])
        if base:
            bang = "!" if page.endswith(".png") else ""
            text = f"{bang}[{text}]({page_url(base, page)})"
        return f"<!-- docs: {page} -->{text}<!-- /docs -->"

    return MENTION.sub(one, readme)


def main() -> None:
    """Rewrite README.md from the ``docs_url`` of pyproject.toml."""
    readme = ROOT / "README.md"
    readme.write_text(render(readme.read_text(), docs_url()))
    sys.stdout.write(f"README.md links derive from docs_url={docs_url()!r}\n")


if __name__ == "__main__":
    main()
