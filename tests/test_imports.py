"""The toolkit's layering, read from its source: `landscape_av` imports nothing of `model`, and no
module of it imports one that imports it (directly or round a longer circle)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import landscape_av

ROOT = Path(landscape_av.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every module named by an import anywhere in the file (in functions too), with its parents."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + [base] if base else up)
            named.add(base)
            named.update(f"{base}.{alias.name}" for alias in node.names)
    return {".".join(n.split(".")[:i]) for n in named for i in range(1, n.count(".") + 2)}


@functools.cache
def _imports_by_module() -> dict[str, set[str]]:
    """Each module of the toolkit (by name) with the modules it imports."""
    return {_module_name(p): _imports(p, _module_name(p)) for p in ROOT.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    """Which modules of the toolkit each module of it imports."""
    modules = _imports_by_module()
    # a module's own packages run before it: importing them is no circle of its making
    return {
        name: {m for m in named if m in modules and m != name and not name.startswith(m + ".")}
        for name, named in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of `graph`: its strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_of_the_toolkit_imports_one_that_imports_it() -> None:
    graph = _graph()
    assert "landscape_av.pipeline.build" in graph and len(graph) > 40  # the whole package was read
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(circle) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_toolkit_imports_nothing_of_the_model() -> None:
    modules = _imports_by_module()
    uses = {n for n, named in modules.items() if any(m.split(".")[0] == "model" for m in named)}
    assert uses == set()
