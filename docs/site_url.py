"""An mkdocs hook: ``site_url`` is the ``docs_url`` of ``pyproject.toml``, its one home.

The README's links derive from the same setting (``generate_readme_links.py``). While it is
empty (the site has no public URL yet), ``site_url`` stays unset: mkdocs then writes a
sitemap without addresses and no canonical links, since it cannot know them.

Loaded by mkdocs.yml (``hooks``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from mkdocs.config.defaults import MkDocsConfig


def _readme_links() -> ModuleType:
    path = Path(__file__).with_name("generate_readme_links.py")
    spec = importlib.util.spec_from_file_location("generate_readme_links", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def site_url(docs_url: str) -> str | None:
    """Return the site's root URL for ``docs_url``, or ``None`` while it is empty."""
    return _readme_links().page_url(docs_url, "index.md") if docs_url else None


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Set ``site_url`` from ``docs_url`` (left unset while it is empty)."""
    config.site_url = site_url(_readme_links().docs_url()) or config.site_url
    return config
