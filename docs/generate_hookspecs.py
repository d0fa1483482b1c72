"""Write docs/hookspecs.md from the hook specs and their docstrings, so the reference cannot drift.

    .venv/bin/python docs/generate_hookspecs.py > docs/hookspecs.md

Every function of ``stratacache.hookspecs`` marked ``@hookspec`` gets a section, in the order
of the module: its signature, its marker's flags (``firstresult``, ``historic``...) and its
Google-style docstring rendered as Markdown. A test checks that the committed page equals this
script's output.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pluggy

from stratacache import hookspecs

INTRO = """\
# Hook specs

The points where a plugin can extend or observe stratacache, generated from the docstrings of
`core/stratacache/hookspecs.py` (by `docs/generate_hookspecs.py`; a test checks that this page
is current). How to write, register, package and test a hook plugin:
[Third-party plugins](plugins.md#hook-plugins)."""

SECTION_TITLES = {
    "Args": "Arguments",
    "Arguments": "Arguments",
    "Returns": "Returns",
    "Yields": "Yields",
    "Raises": "Raises",
    "Note": "Note",
    "Example": "Example",
}
LISTED_SECTIONS = {"Args", "Arguments", "Raises"}
SECTION = re.compile(r"^(?P<name>[A-Z][a-z]+):$")
ROLE = re.compile(r":(?:class|func|meth|data|attr|exc|mod|obj):`(?P<body>[^`]+)`")
TITLED = re.compile(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", re.DOTALL)
LITERAL = re.compile(r"``(?P<code>.+?)``")
WIDTH = 88

FLAG_MEANINGS = {
    "firstresult": "the first result that is not `None` wins; the implementations after it"
    " are not called",
    "historic": "a plugin registered after the hook was called is called too, with the"
    " arguments of that call",
    "warn_on_impl": "implementing the hook warns (it is deprecated)",
    "warn_on_impl_args": "implementations taking some of the arguments warn (deprecated)",
}


def hook_specs() -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
    """Return ``(name, function, marker options)`` of every spec, in the module's order."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    found = []
    for name, obj in vars(hookspecs).items():
        if not inspect.isfunction(obj):
            continue
        options = manager.parse_hookspec_opts(hookspecs, name)
        if options is not None:
            found.append((name, obj, dict(options)))
    return found


def inline(text: str, hooks: set[str]) -> str:
    """Turn reStructuredText roles and double backquotes into Markdown code (and hook links)."""

    def role(match: re.Match[str]) -> str:
        body = " ".join(match["body"].split())
        titled = TITLED.fullmatch(body)
        if titled:  # :meth:`title <target>`
            shown, target = titled["title"], titled["target"]
        else:  # :class:`~package.Name` shows Name; :class:`package.Name` the whole path
            target = body.removeprefix("~")
            shown = target.rpartition(".")[2] if body.startswith("~") else target
        name = target.rpartition(".")[2]
        return f"[`{shown}`](#{name})" if name in hooks else f"`{shown}`"

    return LITERAL.sub(lambda m: f"`{m['code']}`", ROLE.sub(role, text))


def _blocks(lines: list[str]) -> Iterator[tuple[str | None, list[str]]]:
    """Split a cleaned docstring into prose blocks and Google-style sections."""
    prose: list[str] = []
    index = 0
    while index < len(lines):
        header = SECTION.match(lines[index])
        if header is None or header["name"] not in SECTION_TITLES:
            prose.append(lines[index])
            index += 1
            continue
        if prose:
            yield None, prose
            prose = []
        index += 1
        body: list[str] = []
        while index < len(lines) and (not lines[index] or lines[index].startswith(" ")):
            body.append(lines[index])
            index += 1
        while body and not body[-1]:
            body.pop()
        yield header["name"], textwrap.dedent("\n".join(body)).splitlines()
    if prose:
        yield None, prose


def _listed(body: list[str], hooks: set[str]) -> list[str]:
    """Render ``name: text`` entries (continuation lines indented) as a Markdown list."""
    entries: list[list[str]] = []
    for line in body:
        if line and not line.startswith(" "):
            entries.append([line.strip()])
        elif line and entries:
            entries[-1].append(line.strip())
    items = []
    for entry in entries:
        name, _, text = " ".join(entry).partition(": ")
        items.append(f"- `{name}`: {inline(text, hooks)}")
    return items


def docstring(doc: str, hooks: set[str]) -> str:
    """Render a Google-style docstring as Markdown."""
    out: list[str] = []
    for section, body in _blocks(inspect.cleandoc(doc).splitlines()):
        if section is None:
            out.append(inline("\n".join(body).strip("\n"), hooks))
        elif section in LISTED_SECTIONS:
            out.append(f"**{SECTION_TITLES[section]}**\n\n" + "\n".join(_listed(body, hooks)))
        else:
            out.append(f"**{SECTION_TITLES[section]}**\n\n" + inline("\n".join(body), hooks))
    return "\n\n".join(block for block in out if block)


def signature(name: str, func: Callable[..., Any], options: dict[str, Any]) -> str:
    """Return the spec as declared: its marker and its ``def`` line (wrapped when long)."""
    flags = [f"{k}=True" for k in ("firstresult", "historic") if options.get(k)]
    marker = f"@hookspec({', '.join(flags)})" if flags else "@hookspec"
    sig = inspect.signature(func)
    params = [
        f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
        for p in sig.parameters.values()
    ]
    returns = "" if sig.return_annotation is sig.empty else f" -> {sig.return_annotation}"
    line = f"def {name}({', '.join(params)}){returns}: ..."
    if len(line) > WIDTH:
        body = "".join(f"    {param},\n" for param in params)
        line = f"def {name}(\n{body}){returns}: ..."
    return f"{marker}\n{line}"


def flags(options: dict[str, Any]) -> str:
    """Describe how the results of the implementations combine, from the marker's options."""
    set_flags = [k for k in FLAG_MEANINGS if options.get(k)]
    described = [f"`{k}`: {FLAG_MEANINGS[k]}" for k in set_flags]
    if not options.get("firstresult"):
        described.insert(
            0, "every implementation is called; the hook returns their results that are not `None`"
        )
    return f"**Results:** {'; '.join(described)}."


def _summary(doc: str, hooks: set[str]) -> str:
    first = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return inline(" ".join(first.split()), hooks).replace("|", "\\|")


def render() -> str:
    """Return the whole page."""
    specs = hook_specs()
    hooks = {name for name, _, _ in specs}
    # The module docstring without its summary line, which the introduction says already.
    module_doc = inspect.cleandoc(hookspecs.__doc__ or "").partition("\n\n")[2]
    lines = [INTRO, "", docstring(module_doc, hooks), ""]
    lines += ["## Summary", "", "| hook | results | what it is for |", "|---|---|---|"]
    for name, func, options in specs:
        combine = "first non-`None` wins" if options.get("firstresult") else "all are called"
        if options.get("historic"):
            combine += ", historic"
        lines.append(f"| [`{name}`](#{name}) | {combine} | {_summary(func.__doc__ or '', hooks)} |")
    for name, func, options in specs:
        lines += [
            "",
            f"## `{name}` {{#{name}}}",
            "",
            "```py",
            signature(name, func, options),
            "```",
            "",
            flags(options),
            "",
            docstring(func.__doc__ or "", hooks),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
