"""No module of `landscape_av/` or `model/` imports one that imports it, directly or around a
longer loop: the import graph of each package, read from the source (every `import`, at module
level, in a function or under TYPE_CHECKING), has no cycle. And `landscape_av` imports nothing of
`model` (the toolkit knows nothing of the model)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def module_files(package: str, root: Path) -> dict[str, Path]:
    """{dotted module name: its file} of every module of `package` (a folder of `root`)."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules among `known` that module `name` (file `path`) imports: `from a import b`
    names `a.b` where that is a module, else `a`; relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            targets = [t for t in targets[:-1] if t in known] or [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(packages: tuple[str, ...], root: Path = REPO) -> dict[str, set[str]]:
    """{module: the modules of `packages` it imports}."""
    files = {m: p for package in packages for m, p in module_files(package, root).items()}
    return {m: imported_modules(m, p, set(files)) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_loop_through_a_function_level_import(tmp_path):
    """The check itself: a three-module loop closed by an import inside a function (as a lazy
    import hides one), a relative import, and a package `__init__` are all seen."""
    pkg = tmp_path / "loop"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from loop.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from loop.a import x\n")
    (pkg / "d.py").write_text("import loop.a\n")
    graph = import_graph(("loop",), tmp_path)
    assert graph["loop.d"] == {"loop.a"}
    assert cycles(graph) == [["loop.a", "loop.sub.b", "loop.sub.c"]]
    (pkg / "sub" / "c.py").write_text("x = 1\n")
    assert cycles(import_graph(("loop",), tmp_path)) == []


@pytest.mark.parametrize(
    ("package", "sample"),
    [("landscape_av", "landscape_av.pipeline.build"), ("model", "model.apps.checkpoint")],
)
def test_no_module_imports_one_that_imports_it(package, sample):
    graph = import_graph((package,))
    assert sample in graph and len(graph) > 30  # the whole package was read
    loops = cycles(graph)
    assert not loops, "import cycles: " + "; ".join(" <-> ".join(c) for c in loops)


def test_the_toolkit_imports_nothing_of_the_model():
    graph = import_graph(("landscape_av", "model"))
    upward = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m.startswith("landscape_av")
        for t in targets
        if t.split(".")[0] == "model"
    )
    assert not upward, upward
