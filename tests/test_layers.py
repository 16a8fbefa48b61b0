"""The import graph of the `idf` namespace (shared/ARCHITECTURE.md, "Layout"; docs/design.md):
no import cycle between modules, and every import points down the layer table, never up.

The graph is read from the source with `ast` (every `import` and `from … import`, including the
lazy ones inside functions: a cycle broken by a deferred import is still a cycle in the design),
so the test sees what a reader sees, not what one interpreter run happened to load."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("clients/python", "kernels", "server", "cli")

# top-level part -> the parts it may import (itself always)
MAY_IMPORT = {
    "idf.v1": set(),
    "idf.client": {"idf.v1"},
    "idf.kernels": set(),
    "idf.engine": {"idf.kernels"},
    "idf.store": set(),
    "idf.stream": {"idf.engine", "idf.store", "idf.kernels"},
    "idf.server": {"idf.v1", "idf.client", "idf.kernels", "idf.engine", "idf.store", "idf.stream"},
    "idf.cli": {"idf.v1", "idf.client", "idf.server", "idf.engine"},
}
# The CLI imports the server only to serve and the engine only for local work (ARCHITECTURE.md).
CLI_MAY_USE = {"idf.server": {"idf.cli.main"}, "idf.engine": {"idf.cli.data", "idf.cli.train"}}
# Inside the engine: the shared root modules import no capability package; serving code never
# imports training (training may import anything in the engine).
ENGINE_BASE = {"idf.engine.errors", "idf.engine.cost", "idf.engine.checkpoints", "idf.engine.unet"}


def modules() -> dict[str, Path]:
    found = {}
    for folder in FOLDERS:
        for path in (ROOT / folder / "idf").rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the idf modules it imports (a `from pkg import name` counts as pkg.name when
    that is a module, else as pkg)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
                ]
            else:
                continue
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rpartition(".")[0]
                if target in mods and target != name and target.startswith("idf."):
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def part(module: str) -> str:
    return ".".join(module.split(".")[:2])


MODULES = modules()
EDGES = imports(MODULES)


def test_the_graph_is_read():
    """The reader finds what it must (else the checks below would pass on an empty graph)."""
    assert {"idf.engine.sampling.boltzmann", "idf.server.app", "idf.client", "idf.cli.main"} <= set(
        MODULES
    )
    assert "idf.engine.sampling.samplers" in EDGES["idf.engine.sampling.boltzmann"]
    assert "idf.kernels.phi4" in EDGES["idf.engine.sampling.models.phi4"]


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(EDGES) == []


def test_imports_point_down_the_layer_table():
    wrong = [
        f"{a} -> {b}"
        for a in sorted(EDGES)
        for b in sorted(EDGES[a])
        if part(a) != part(b) and part(b) not in MAY_IMPORT[part(a)]
    ]
    assert wrong == []


def test_the_cli_uses_the_engine_and_the_server_only_where_allowed():
    wrong = [
        f"{a} -> {b}"
        for a in sorted(EDGES)
        if part(a) == "idf.cli"
        for b in sorted(EDGES[a])
        if part(b) in CLI_MAY_USE and a not in CLI_MAY_USE[part(b)]
    ]
    assert wrong == []


@pytest.mark.parametrize("rule", ["base", "training"])
def test_engine_inner_layers(rule):
    engine = {a: b for a, b in EDGES.items() if a.startswith("idf.engine.")}
    if rule == "base":
        wrong = [
            f"{a} -> {b}"
            for a in sorted(ENGINE_BASE)
            for b in sorted(engine.get(a, ()))
            if b.startswith("idf.engine.") and b not in ENGINE_BASE
        ]
    else:
        wrong = [
            f"{a} -> {b}"
            for a in sorted(engine)
            if not a.startswith("idf.engine.training")
            for b in sorted(engine[a])
            if b.startswith("idf.engine.training")
        ]
    assert wrong == []
