"""Architecture rules on the source: small modules, and no import cycle among them.

Both rules read the files with :mod:`ast`; nothing is imported. The modules are those of
``core/stratacache`` and ``plugins/stratacache_plugins``, subpackages included.

An import counts wherever it is written, inside a function too (a lazy import is still a
dependency), except under ``if TYPE_CHECKING:``, which never runs. ``import a.b.c`` and
``from a.b import c`` (``c`` a submodule) import ``a.b.c``; ``from a.b import name`` (``name``
not a submodule) imports the package ``a.b`` itself. Either way Python first imports the
parent packages, ``a`` and ``a.b``, so those count too, except the importing module's own
ancestors: they are always imported before the module, and a package's ``__init__``
importing its submodules would otherwise make every package a cycle. A module that names its
own ancestor package explicitly (``from stratacache import cache`` in
``stratacache.decorator``) does depend on that ``__init__``, and that import counts.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (ROOT / "core" / "stratacache", ROOT / "plugins" / "stratacache_plugins")
MAX_LINES = 400


@dataclass(frozen=True)
class Module:
    """A module of the checked packages."""

    name: str
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def ancestors(self) -> list[str]:
        """The packages containing this module, outermost first (not the module itself)."""
        parts = self.name.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts))]


def modules(packages: tuple[Path, ...] = PACKAGES) -> dict[str, Module]:
    """Return every module of ``packages`` (directories of packages), by dotted name."""
    found: dict[str, Module] = {}
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(package.parent).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = Module(".".join(parts), path)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Yield every import statement of ``tree``, at any depth, but not the type-only ones."""
    pending = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                pending.append(ast.Module(body=child.orelse, type_ignores=[]))  # it runs
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            pending.append(child)


def _known(name: str, known: dict[str, Module]) -> str | None:
    """Return ``name`` or its longest prefix that is a checked module (None: not ours)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in known:
            return prefix
    return None


def imported(
    module: Module, node: ast.Import | ast.ImportFrom, known: dict[str, Module]
) -> set[str]:
    """Return the checked modules an import statement names (not yet their parents)."""
    if isinstance(node, ast.Import):
        names = {_known(alias.name, known) for alias in node.names}
        return {name for name in names if name is not None}
    if node.level:
        base = module.name if module.is_package else module.name.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        if node.module:
            base = f"{base}.{node.module}" if base else node.module
    else:
        base = node.module or ""
    targets = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        target = submodule if submodule in known else _known(base, known)
        if target is not None:
            targets.add(target)
    return targets


def import_graph(packages: tuple[Path, ...] = PACKAGES) -> dict[str, set[str]]:
    """Return, for each module of ``packages``, the modules of ``packages`` it imports."""
    known = modules(packages)
    graph: dict[str, set[str]] = {}
    for module in known.values():
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        own_ancestors = set(module.ancestors)
        edges: set[str] = set()
        for node in import_nodes(tree):
            for target in imported(module, node, known):
                edges.add(target)
                edges.update(p for p in known[target].ancestors if p not in own_ancestors)
        edges.discard(module.name)
        graph[module.name] = edges
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of ``graph`` (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every elementary import cycle, each as a chain that ends where it starts.

    Each cycle starts at its alphabetically first module, so each is reported once.
    """
    found: list[list[str]] = []
    for component in strongly_connected(graph):
        members = set(component)
        if len(component) == 1:
            continue
        for start in component:
            # Cycles through ``start`` among the members not before it (each cycle once).
            allowed = {m for m in members if m >= start}
            path = [start]

            def extend(node: str, allowed: set[str] = allowed, path: list[str] = path) -> None:
                for succ in sorted(graph[node] & allowed):
                    if succ == path[0]:
                        found.append([*path, succ])
                    elif succ not in path:
                        path.append(succ)
                        extend(succ)
                        path.pop()

            extend(start)
    return found


def test_no_module_exceeds_the_line_limit() -> None:
    lengths = {
        module.path.relative_to(ROOT).as_posix(): len(module.path.read_text().splitlines())
        for module in modules().values()
    }
    offenders = [
        f"{path} ({lines} lines)" for path, lines in sorted(lengths.items()) if lines > MAX_LINES
    ]
    assert not offenders, (
        f"{len(offenders)} modules exceed {MAX_LINES} lines; split each into modules of one"
        f" concern: {', '.join(offenders)}"
    )


def test_no_import_cycle() -> None:
    found = [" -> ".join(cycle) for cycle in cycles(import_graph())]
    assert not found, (
        f"{len(found)} import cycles (lazy imports included, TYPE_CHECKING ones not); break"
        " each by moving what both sides need into a module of its own, or by importing the"
        " defining module rather than the package facade:\n" + "\n".join(found)
    )


# The analysis itself, on a package written for the purpose.


def write_package(root: Path, files: dict[str, str]) -> tuple[Path, ...]:
    """Write ``files`` (relative path: source) under ``root``; return its top package."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return (root / "pkg",)


def test_analysis_resolves_every_form_of_import(tmp_path: Path) -> None:
    packages = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": """
                import os
                from typing import TYPE_CHECKING
                from . import b
                from .sub import deep
                if TYPE_CHECKING:
                    from pkg import c
                else:
                    import pkg.e
                def lazy():
                    from pkg.c import C
                """,
            "pkg/b.py": "from .sub.deep import X\nfrom pkg import thing\n",
            "pkg/c.py": "import pkg.sub.deep as d\n",
            "pkg/e.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/deep.py": "from .. import b\nfrom . import name\n",
        },
    )
    assert import_graph(packages) == {
        "pkg": {"pkg.a"},
        # own ancestors (pkg) are not counted; the TYPE_CHECKING import is not counted
        "pkg.a": {"pkg.b", "pkg.sub", "pkg.sub.deep", "pkg.c", "pkg.e"},
        # a name that is no submodule imports the package itself, explicitly
        "pkg.b": {"pkg.sub", "pkg.sub.deep", "pkg"},
        "pkg.c": {"pkg.sub", "pkg.sub.deep"},
        "pkg.e": set(),
        "pkg.sub": set(),
        "pkg.sub.deep": {"pkg.b", "pkg.sub"},
    }


def test_analysis_reports_each_cycle_once_as_a_chain() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "a"], ["a", "b", "c", "a"]]
