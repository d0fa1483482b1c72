"""An mkdocs hook: the CLI reference shows the application's epilog, kept in one place.

mkdocs-click renders each command's help, usage and options, but not click's epilog, where
``stratacache --help`` lists the exit codes and where the settings are read from. This hook
puts the epilog, as ``--help`` prints it, where ``docs/cli.md`` holds :data:`MARKER`.

Loaded by mkdocs.yml (``hooks``).
"""

from __future__ import annotations

from typing import Any

from stratacache.cli import EPILOG

MARKER = "<!-- stratacache --help epilog -->"


def epilog_markdown(epilog: str = EPILOG) -> str:
    r"""The epilog as a text block, without click's no-rewrap marks (``\b`` lines)."""
    lines = [line for line in epilog.splitlines() if line.strip() != "\b"]
    return "```text\n" + "\n".join(lines) + "\n```"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace :data:`MARKER` by the epilog, on the page that has it."""
    return markdown.replace(MARKER, epilog_markdown()) if MARKER in markdown else markdown
