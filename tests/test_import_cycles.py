"""No import cycle inside the package, counting imports inside functions: they hide a cycle, they do not remove it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fashion_hier"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in it (``from pkg import module`` counts the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {name: _imports(path, modules) - {name} for name, path in paths.items()}
    # a package's __init__ importing its own submodules is how it exports them, not a dependency cycle
    return {name: {other for other in targets if not other.startswith(name + ".")} for name, targets in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle_hidden_in_a_function():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, f"import cycles (a command belongs in fashion_hier.commands, a shared error in errors): {found}"


def _modules_importing_keras_at_the_top() -> list[str]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Import) and any(alias.name == "keras" for alias in node.names) for node in tree.body):
            modules.append(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    return modules


@pytest.mark.slow
def test_every_module_that_imports_keras_can_be_imported_first_in_a_fresh_interpreter():
    """The package registers its Keras objects (``REGISTERING_MODULES``) when keras is first imported: a module whose
    own ``import keras`` comes first must not be needed, half initialised, by those (the cycle the quickstart
    notebook once hit through ``from fashion_hier import build_model``)."""
    import subprocess
    import sys

    statements = [f"import {module}" for module in _modules_importing_keras_at_the_top()]
    statements.append("from fashion_hier import build_model")
    assert "import fashion_hier.losses" in statements and len(statements) > 5
    running = {statement: subprocess.Popen([sys.executable, "-c", statement], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True) for statement in statements}
    failed = {statement: process.communicate(timeout=300)[1][-1500:] for statement, process in running.items()}
    failed = {statement: error for statement, error in failed.items() if running[statement].returncode != 0}
    assert not failed, failed
