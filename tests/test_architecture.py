"""The shape of the package: no import cycle, no module over 500 lines, a pinned and fully typed public API,
and one registered adapter per extension (no branching on access kinds outside the registry)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

import edgekit

PACKAGE = Path(edgekit.__file__).resolve().parent
MAX_LINES = 500

#: The public API, pinned: adding or removing a name is a decision, made here and in edgekit/__init__.py.
PUBLIC_API = [
    "AccuracyBudget",
    "Artifact",
    "BenchOptions",
    "BenchResult",
    "Comparison",
    "EdgekitError",
    "Metrics",
    "ModelSource",
    "RunOptions",
    "RunResult",
    "Target",
    "__version__",
    "benchmark",
    "check_calibration",
    "compare_runs",
    "exit_status",
    "export",
    "load_source",
    "quantize",
    "run",
    "validate",
]


def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is its ``__init__.py``)."""
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at module level and inside functions/classes/try/if, except those under
    ``if TYPE_CHECKING:`` (they never run; they only name types for the type checker)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute dotted names an import statement may load (relative imports resolved against ``module``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, *([node.module] if node.module else [])])
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]  # `from pkg import submodule` too


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (the longest module prefix of each imported name)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            for imported in _imported_names(name, path.name == "__init__.py", node):
                while imported and imported not in modules:
                    imported = imported.rpartition(".")[0]
                if imported and imported != name:
                    deps.add(imported)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path: list[str] = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    tree = ast.parse("import os\nif TYPE_CHECKING:\n    import a.b\nelse:\n    import c\n"
                     "def f():\n    from . import x\n    from ..y import z\n")
    nodes = _import_nodes(tree)
    assert [n.names[0].name for n in nodes] == ["os", "c", "x", "z"]
    assert _imported_names("edgekit.report.model", False, nodes[2]) == ["edgekit.report", "edgekit.report.x"]
    assert _imported_names("edgekit.report", True, nodes[3]) == ["edgekit.y", "edgekit.y.z"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_edgekit() -> None:
    graph = import_graph()
    assert {"edgekit.pipeline", "edgekit.executors.fleet", "edgekit.agent", "edgekit.bench"} <= set(graph)
    assert "edgekit.executors.base" in graph["edgekit.pipeline"]  # the graph does see real edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_over_500_lines() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them by job): {over}"


def test_test_file_names_are_unique() -> None:
    """tests/ has no __init__.py, so pytest imports test files by base name: two alike stop collection."""
    tests = Path(__file__).resolve().parent
    seen: dict[str, list[str]] = {}
    for path in sorted(tests.rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


def test_public_api_is_pinned() -> None:
    assert sorted(edgekit.__all__) == sorted(PUBLIC_API)
    assert len(set(edgekit.__all__)) == len(edgekit.__all__)
    for name in PUBLIC_API:
        assert getattr(edgekit, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from edgekit import *", namespace)  # the star import gives exactly __all__
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC_API)
    with pytest.raises(AttributeError):
        _ = edgekit.no_such_name  # type: ignore[attr-defined]


def test_no_submodule_shadows_a_public_name() -> None:
    """Importing ``edgekit.<name>`` sets the attribute ``edgekit.<name>`` to that module, replacing a public
    function of the same name (``edgekit.quantize`` would stop being callable once the pipeline ran)."""
    submodules = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    clash = sorted(submodules & set(PUBLIC_API))
    assert not clash, f"edgekit submodules named like public API names: {clash}; rename the module(s)"


def _no_any(hint: object) -> bool:
    return hint is not typing.Any


@pytest.mark.parametrize("name", [n for n in PUBLIC_API if n != "__version__"])
def test_public_api_is_fully_typed(name: str) -> None:
    obj = getattr(edgekit, name)
    if inspect.isclass(obj):  # every annotation of the class and of its constructor resolves to a real type
        hints = typing.get_type_hints(obj)
        if dataclasses.is_dataclass(obj):
            assert {f.name for f in dataclasses.fields(obj)} <= set(hints), name
        typing.get_type_hints(obj.__init__)
        return
    assert callable(obj), name
    hints = typing.get_type_hints(obj)
    params = [p for p in inspect.signature(obj).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [p.name for p in params if p.name not in hints]
    assert not missing, f"{name}: parameters without annotation: {missing}"
    assert "return" in hints and _no_any(hints["return"]), f"{name} must not return Any"
    assert all(_no_any(hints[p.name]) for p in params), f"{name}: a parameter is typed Any"
    assert isinstance(edgekit.__version__, str)


def test_access_kinds_and_runtime_names_come_from_the_registry() -> None:
    from edgekit import registry
    from edgekit.targets import access_kinds, runtime_names

    assert access_kinds() == registry.access_kinds() == tuple(registry.EXECUTORS)
    assert {"local", "ssh", "estimate"} <= set(access_kinds())
    assert runtime_names("estimate") == tuple(sorted(registry.ESTIMATORS))
    assert set(runtime_names("local")) == set(runtime_names("ssh")) == set(registry.runtime_names())


def test_no_branching_on_access_kinds_or_estimator_names_outside_the_adapters() -> None:
    """The pipeline, API, CLI and report ask the registry; they never compare with an access or estimator name."""
    from edgekit import registry

    names = {*registry.EXECUTORS, *registry.ESTIMATORS}
    for rel in ("pipeline.py", "api.py", "cli.py", "targets.py", "report/markdown.py", "report/model.py",
                "report/recommend.py"):
        tree = ast.parse((PACKAGE / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                hit = sorted(str(c) for c in consts if c in names)
                assert not hit, f"{rel}:{node.lineno} compares with {hit}: ask the registry instead"
