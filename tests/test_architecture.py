"""Module boundaries, read from the source: which module imports which library, no cycles.

Every import counts, at any depth: module level, inside functions, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "tasks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES
            for p in sorted((ROOT / package).rglob("*.py"))}


def _imported(path: Path, module: str, modules: set[str]) -> set[str]:
    """Dotted names of the modules ``path`` imports, relative imports resolved:
    ``from a import b`` is ``a.b`` where that is a module of ``modules``, else ``a``."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in modules else base)
    return found


def _imports() -> dict[str, set[str]]:
    sources = _sources()
    return {name: _imported(path, name, set(sources)) for name, path in sources.items()}


def _importers_of(library: str) -> set[str]:
    return {name for name, names in _imports().items()
            if any(n == library or n.startswith(f"{library}.") for n in names)}


def _in_package(names: set[str], package: str) -> bool:
    return bool(names) and all(n == package or n.startswith(f"{package}.") for n in names)


def test_optuna_is_imported_by_tuning_only() -> None:
    assert _in_package(_importers_of("optuna"), "bench.tuning")
    # optuna-dashboard reads the storage too
    assert _in_package(_importers_of("optuna_dashboard"), "bench.tuning")


def test_mlflow_is_imported_by_tracking_only() -> None:
    assert _in_package(_importers_of("mlflow"), "bench.tracking")


# The stages of the pipeline, as folders of ``bench``; every other module (the loop, the
# diagnostics, models, remedies, registry and the small leaf helpers) and ``tasks`` are the
# base. A stage may import the stages listed here and nothing above them.
STAGES = ("config", "tuning", "tracking", "run", "report", "cli")
MAY_IMPORT = {
    "base": {"base"},
    "config": {"base", "config"},
    "tuning": {"base", "config", "tuning"},
    "tracking": {"base", "config", "tracking"},
    "run": {"base", "config", "tuning", "tracking", "run"},
    "report": {"base", "config", "tuning", "tracking", "report"},
    "cli": {"base", "config", "tuning", "tracking", "run", "report", "cli"},
}


def stage_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "bench" and len(parts) > 1:
        if parts[1] in STAGES:
            return parts[1]
        if parts[1] == "__main__":
            return "cli"
    return "base"


def test_each_stage_imports_only_the_stages_below_it() -> None:
    imports = _imports()
    modules = set(imports)
    wrong = sorted(f"{name} ({stage_of(name)}) imports {n} ({stage_of(n)})"
                   for name, names in imports.items() for n in names
                   if n in modules and stage_of(n) not in MAY_IMPORT[stage_of(name)])
    assert wrong == []


def test_the_stages_are_the_folders_of_bench() -> None:
    folders = {p.name for p in (ROOT / "bench").iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    assert set(STAGES) <= folders
    assert stage_of("bench.run.worker") == "run" and stage_of("bench.train") == "base"
    assert stage_of("tasks.adding") == "base" and stage_of("bench.__main__") == "cli"


def test_no_module_is_longer_than_five_hundred_lines() -> None:
    long = sorted(f"{module} ({n} lines)" for module, path in _sources().items()
                  if (n := len(path.read_text().splitlines())) > 500)
    assert long == []


def test_no_class_is_longer_than_two_hundred_lines() -> None:
    long = []
    for module, path in _sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 200:
                    long.append(f"{module}.{node.name} ({lines} lines)")
    assert long == []


def _bench_graph() -> dict[str, set[str]]:
    """bench module -> the bench modules it imports (a package counts as its __init__)."""
    imports = _imports()
    modules = {name for name in imports if name.startswith("bench")}
    return {name: {n for n in names if n in modules and n != name}
            for name, names in imports.items() if name in modules}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph, or [] (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
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
                stack.append(iter(sorted(graph[nxt])))
    return []


def test_no_import_cycle_among_bench_modules() -> None:
    graph = _bench_graph()
    assert {"bench.run.suite", "bench.run.pool", "bench.run.worker", "bench.tuning"} <= set(graph)
    assert _cycle(graph) == [], " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for module, path in _sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 60:
                    long.append(f"{module}.{node.name} ({lines} lines)")
    assert long == []


def test_nothing_outside_the_records_branches_on_a_model_or_task_name() -> None:
    """Facts live in the records: no ``kind == "lstm"``, ``task == "har"`` and the like."""
    names = {"rnn", "irnn", "lstm", "gru", "orth-rnn", "adding", "copy", "har", "l2", "norm"}
    found = []
    for module, path in _sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in names
                    for c in [node.left, *node.comparators]):
                found.append(f"{module}:{node.lineno}")
    assert found == []
