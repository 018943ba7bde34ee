"""Imports run one way: up the layers of `indexer`, then `api`; never in a circle.

Every module of the packages `indexer` and `api` is parsed (nothing is imported),
and every import is counted: absolute and relative, at the top, inside functions,
under `if TYPE_CHECKING:`, and `importlib.import_module("...")` with a literal name.
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

# The layers, lowest first; docs/architecture.md explains them. A module may import a module
# of a lower rank, and one of its own rank only inside its own group: indexer.webhooks and
# indexer.store share rank 3 but import neither each other. A pattern `x.*` is the package x
# and everything in it. (`indexer` itself, the package's __init__, counts as platform.)
LAYERS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (0, "platform", (
        "indexer", "indexer.settings", "indexer.errors", "indexer.logging", "indexer.domain",
        "indexer.intervals", "indexer.localhost", "indexer.db.*",
    )),
    (1, "chain", ("indexer.chain.*",)),
    (2, "outbox", ("indexer.outbox.*",)),
    (3, "webhooks", ("indexer.webhooks.*",)),
    (3, "store", ("indexer.store.*",)),
    (4, "window", ("indexer.window.*",)),
    (5, "customer resources", (
        "indexer.accounts", "indexer.subscriptions", "indexer.event_signatures",
        "indexer.backfills", "indexer.idempotency", "indexer.deliveries", "indexer.pagination",
        "indexer.refusals", "indexer.events", "indexer.sessions",
    )),
    (6, "worker", ("indexer.worker",)),
    (7, "api", ("api.*",)),
)  # fmt: skip
# The HTTP client of the command line and the demo: of logfill's own code it may import
# only these (third-party packages and the standard library are fine).
CLIENT = "api.client"
CLIENT_MAY_IMPORT = frozenset({"indexer.domain"})
# Top-level packages of this repository that `indexer` and `api` must not import.
OUTER = {"indexer": ("api", "demo", "bench", "tests"), "api": ("demo", "bench", "tests")}

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("indexer", "api")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # a module of the tree when it is one, else the name as written
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.path}:{self.line})"


@dataclass(frozen=True)
class Layer:
    rank: int
    group: str


# --------------------------------------------------------------------------- the walker


def modules_under(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Module name -> file, for every .py file of the packages (a package is its __init__)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _known(name: str, modules: Mapping[str, Path]) -> str:
    """The module `name` names: itself, or its longest prefix that is a module of the tree
    (`import a.b.c` of a missing c still depends on a.b); third-party names as written."""
    candidate = name
    while candidate:
        if candidate in modules:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return name


def _from_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".")
    if node.level - 1 >= len(parts):
        raise ValueError(f"{module}: relative import beyond the top package (line {node.lineno})")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def _dynamic(node: ast.Call) -> str | None:
    """The literal name given to importlib.import_module(...) or __import__(...)."""
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("import_module", "__import__")
    )
    if named and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        if isinstance(value, str) and not value.startswith("."):
            return value
    return None


def imports_of(module: str, path: Path, modules: Mapping[str, Path], root: Path) -> list[Import]:
    """Every import anywhere in the module's file, resolved to what it loads."""
    shown = path.relative_to(root)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, module, is_package)
            # `from package import name` loads the submodule package.name if there is one.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        elif isinstance(node, ast.Call) and (name := _dynamic(node)):
            names = [name]
        for name in names:
            imported = _known(name, modules)
            if imported != module:
                found.append(Import(module, imported, shown, line))
    return found


def import_graph(root: Path, packages: Iterable[str]) -> list[Import]:
    modules = modules_under(root, packages)
    return [
        edge for name, path in modules.items() for edge in imports_of(name, path, modules, root)
    ]


def cycles(edges: Iterable[Import]) -> list[list[Import]]:
    """One shortest cycle through each group of modules that import each other in a circle."""
    graph: dict[str, dict[str, Import]] = defaultdict(dict)
    for edge in edges:
        graph[edge.importer].setdefault(edge.imported, edge)
    found = []
    for component in _strongly_connected(graph):
        if len(component) > 1:
            found.append(_shortest_cycle(min(component), graph, component))
    return found


def _strongly_connected(graph: Mapping[str, Mapping[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _shortest_cycle(
    start: str, graph: Mapping[str, Mapping[str, Import]], within: set[str]
) -> list[Import]:
    came_by: dict[str, Import] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child, edge in sorted(graph.get(node, {}).items()):
            if child not in within:
                continue
            if child == start:
                path = [edge]
                while path[0].importer != start:
                    path.insert(0, came_by[path[0].importer])
                return path
            if child not in came_by:
                came_by[child] = edge
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # a component of 2+ always has one


def layer_of(module: str) -> Layer | None:
    for rank, group, patterns in LAYERS:
        for pattern in patterns:
            package = pattern.removesuffix(".*")
            if module == package or (pattern.endswith(".*") and module.startswith(package + ".")):
                return Layer(rank, group)
    return None


def layer_violations(edges: Iterable[Import]) -> list[str]:
    """Imports from a lower layer up, or sideways into another group of the same rank."""
    found = []
    for edge in edges:
        if not (_top(edge.importer) == _top(edge.imported) == "indexer"):
            continue
        source, target = layer_of(edge.importer), layer_of(edge.imported)
        if source is None or target is None:
            continue  # test_every_module_has_a_layer names it
        upward = target.rank > source.rank
        sideways = target.rank == source.rank and target.group != source.group
        if upward or sideways:
            found.append(
                f"{edge}: rank {source.rank} ({source.group}) imports "
                f"rank {target.rank} ({target.group})"
            )
    return found


def _top(module: str) -> str:
    return module.partition(".")[0]


def _circle(cycle: list[Import]) -> str:
    names = " -> ".join([cycle[0].importer, *(edge.imported for edge in cycle)])
    return "\n    ".join([names, *map(str, cycle)])


def _report(what: str, lines: Iterable[object]) -> str:
    return f"{what}:\n" + "\n".join(f"  {line}" for line in lines)


# --------------------------------------------------------------------------- the tree


@pytest.fixture(scope="module")
def edges() -> list[Import]:
    return import_graph(REPO_ROOT, PACKAGES)


def test_every_module_has_a_layer() -> None:
    unranked = [name for name in modules_under(REPO_ROOT, PACKAGES) if layer_of(name) is None]
    assert not unranked, _report("modules in no layer of LAYERS (add them)", unranked)


def test_no_import_cycles(edges: list[Import]) -> None:
    found = cycles(edges)
    assert not found, _report("modules that import each other in a circle", map(_circle, found))


@pytest.mark.parametrize("package", sorted(OUTER))
def test_no_import_of_an_outer_package(edges: list[Import], package: str) -> None:
    outer = OUTER[package]
    found = [e for e in edges if _top(e.importer) == package and _top(e.imported) in outer]
    assert not found, _report(f"{package} imports {', '.join(outer)}", found)


def test_indexer_layers_import_downward_only(edges: list[Import]) -> None:
    found = layer_violations(edges)
    assert not found, _report("imports against the layers (see LAYERS)", found)


def test_the_api_client_imports_only_the_domain(edges: list[Import]) -> None:
    found = [
        e
        for e in edges
        if e.importer == CLIENT
        and _top(e.imported) in ("indexer", "api", "demo", "bench", "tests")
        and e.imported not in CLIENT_MAY_IMPORT
    ]
    assert not found, _report(
        f"{CLIENT} imports more of logfill than {set(CLIENT_MAY_IMPORT)}", found
    )


# --------------------------------------------------------------------------- the walker, tested


def _tree(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "pkg/__init__.py": "from . import a\n",
            "pkg/a.py": (
                "from __future__ import annotations\n"
                "from typing import TYPE_CHECKING\n"
                "import os\n"
                "from .sub import b\n"
                "from pkg.sub.b import thing\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.sub import c\n"
            ),
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": (
                "def later():\n"
                "    from .. import a\n"
                "    import pkg.sub.missing.deeper\n"
                "    importlib.import_module('other.thing')\n"
            ),
            "pkg/sub/c.py": "from .b import later\nfrom pkg.sub import *\n",
        },
    )
    edges = {(e.importer, e.imported) for e in import_graph(tmp_path, ["pkg"])}
    assert edges == {
        ("pkg", "pkg.a"),
        ("pkg.a", "__future__"),
        ("pkg.a", "typing"),
        ("pkg.a", "os"),
        ("pkg.a", "pkg.sub.b"),
        ("pkg.a", "pkg.sub.c"),
        ("pkg.sub.b", "pkg.a"),
        ("pkg.sub.b", "pkg.sub"),
        ("pkg.sub.b", "other.thing"),
        ("pkg.sub.c", "pkg.sub.b"),
        ("pkg.sub.c", "pkg.sub"),
    }
    [cycle] = cycles(import_graph(tmp_path, ["pkg"]))
    assert [(e.importer, e.imported) for e in cycle] == [
        ("pkg.a", "pkg.sub.b"),
        ("pkg.sub.b", "pkg.a"),
    ]


def test_layers_allow_down_and_within_a_group_only() -> None:
    def edge(importer: str, imported: str) -> Import:
        return Import(importer, imported, Path("x.py"), 1)

    allowed = [
        edge("indexer.window.run", "indexer.store.commit"),
        edge("indexer.store.commit", "indexer.store.staging"),
        edge("indexer.db.pool", "indexer.errors"),
        edge("indexer.accounts", "indexer.subscriptions"),
        edge("api.handlers.backfills", "indexer.worker"),
    ]
    refused = [
        edge("indexer.store.credits", "indexer.window.plan"),
        edge("indexer.webhooks.claims", "indexer.store.matches"),
        edge("indexer.chain.client", "indexer.accounts"),
    ]
    assert layer_violations(allowed) == []
    assert len(layer_violations(refused)) == len(refused)
    assert layer_violations(refused[:1]) == [
        "indexer.store.credits -> indexer.window.plan (x.py:1):"
        " rank 3 (store) imports rank 4 (window)"
    ]
