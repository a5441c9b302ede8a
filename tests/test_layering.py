"""The package's layers: what may import what.

- A worker process imports the trial function's experiment file, never ``tuneloop.study``.
- No import cycles among tuneloop's modules (module-level imports; ``if TYPE_CHECKING:`` blocks and
  imports inside functions aside, as they run after every module has loaded).
- ``analysis/`` reads what is stored: it imports nothing that runs studies (probe, run, study).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tuneloop

SRC = Path(tuneloop.__file__).resolve().parent.parent  # the folder that holds tuneloop/


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package by dotted name: (its file, whether it is a package)."""
    out = {}
    for path in sorted((SRC / "tuneloop").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(body: list[ast.stmt], *, nested: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``body``: at module level only (``nested=False``: no function or
    class bodies, no ``if TYPE_CHECKING:``), or every one anywhere (``nested=True``)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if nested or not _is_type_checking(node):
                yield from _imports(node.body, nested=nested)
            yield from _imports(node.orelse, nested=nested)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _imports(block, nested=nested)
        elif isinstance(node, (ast.With, ast.For, ast.While, ast.ClassDef)):  # bodies that run on import
            yield from _imports(node.body, nested=nested)
            yield from _imports(getattr(node, "orelse", []), nested=nested)
        elif nested and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _imports(node.body, nested=nested)


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The package's modules one import statement loads (``from a import b`` is ``a.b`` when that
    is a module, else ``a``); others' modules are left out."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    if node.level:  # relative: from the module's own package, one level up per extra dot
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    out = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in known:
            out.add(f"{base}.{alias.name}")
        elif base in known:
            out.add(base)
    return out


def import_graph(*, nested: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at module level unless ``nested``)."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        deps: set[str] = set()
        for node in _imports(tree.body, nested=nested):
            deps |= _targets(name, is_package, node, set(modules))
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) through each strongly connected group of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
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
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")  # a strongly connected group has one


def test_a_worker_process_never_imports_the_study_module():
    code = ("import sys, tuneloop.run._worker; "
            "print(sorted(m for m in sys.modules if m == 'tuneloop.study' or m.startswith('tuneloop.study.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing tuneloop.run._worker loaded {out.strip()}"


def test_a_worker_loading_an_experiment_file_never_imports_sqlalchemy(tmp_path):
    """A worker imports its module, then the experiment file, which builds a Study; it never opens the
    store, so it must not pay for SQLAlchemy (a quarter of a second of every worker's start)."""
    path = tmp_path / "exp.py"
    path.write_text("import tuneloop as tl\nspace = tl.Space(lr=tl.LogFloat(1e-3, 1e-1))\n"
                    "def train(trial):\n    return {'loss': trial.params.lr}\n"
                    "study = tl.Study('s', space, train, metric='loss', mode='min')\n")
    code = ("import sys, tuneloop.run._worker\nfrom tuneloop._load import load_module\n"
            f"module = load_module({str(path)!r})\nassert type(module.study).__name__ == 'Study'\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy')[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"a worker loaded {out.strip()}"
    # ... and where a store is opened, it loads as before
    code = "import sys, tuneloop as tl\ntl.Store('sqlite://')\nprint('sqlalchemy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["True"]


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_the_graph_sees_module_level_imports_only():
    graph = import_graph()
    assert "tuneloop.store" in graph["tuneloop.analysis._study"]  # `from tuneloop.store import TrialRecord`
    assert "tuneloop.store.records" in graph["tuneloop.store"]  # a package importing its own module
    assert "tuneloop.study" not in graph["tuneloop"]  # only under `if TYPE_CHECKING:` (and lazily)
    assert "tuneloop.rounds" not in graph["tuneloop.analysis._diagnose"]  # imported inside a function
    assert "tuneloop.rounds" in import_graph(nested=True)["tuneloop.analysis._diagnose"]


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (module-level imports):\n" + "\n".join(" -> ".join(c) for c in found)


def test_analysis_imports_nothing_that_runs_studies():
    forbidden = ("tuneloop.probe", "tuneloop.run", "tuneloop.study")
    graph = import_graph(nested=True)  # function-level imports count too: they run all the same
    def runs_studies(module: str) -> bool:
        return any(module == f or module.startswith(f + ".") for f in forbidden)

    analysis = [m for m in graph if m == "tuneloop.analysis" or m.startswith("tuneloop.analysis.")]
    assert "tuneloop.analysis._diagnose" in analysis
    bad = {m: sorted(filter(runs_studies, graph[m])) for m in analysis if any(map(runs_studies, graph[m]))}
    assert not bad, f"analysis/ imports modules that run studies: {bad}"
