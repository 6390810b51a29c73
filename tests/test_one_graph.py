"""Exactly one place builds the actor graph: ``actors/system/graph.py``.

Everything else (the daemon, backtest, replay, harnesses, benchmarks, tests)
calls ``live_graph()`` or ``simulated_graph()``. A ``Supervisor`` built
anywhere else hosts one actor (a unit test of that actor), never a graph;
the runtime (``daemon/``) and its own tests (``tests/daemon/``) are exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRAPH = Path("actors/system/graph.py")
RUNTIME = (Path("daemon"), Path("tests/daemon"))
SCANNED = ("actors", "tests")
#: Built only by the composition root: they need the whole graph.
GRAPH_ONLY = frozenset({"CycleRunner", "CycleDeps"})


def sources() -> Iterator[tuple[Path, ast.Module]]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            yield rel, ast.parse(path.read_text(), filename=str(rel))


def called_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and called_name(n) == name]


def is_runtime(path: Path) -> bool:
    return any(path.is_relative_to(r) for r in RUNTIME)


def supervised_actors(scope: ast.AST, supervisor: str) -> tuple[int, bool]:
    """How many ``<supervisor>.add(...)`` calls ``scope`` has, and whether one is in a loop."""
    count, looped = 0, False
    loops = (ast.For, ast.AsyncFor, ast.While, ast.comprehension)

    def visit(node: ast.AST, in_loop: bool) -> None:
        nonlocal count, looped
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == supervisor
        ):
            count += 1
            looped = looped or in_loop
        for child in ast.iter_child_nodes(node):
            visit(child, in_loop or isinstance(node, loops))

    visit(scope, False)
    return count, looped


def supervisors_outside_the_root() -> Iterator[tuple[Path, int, ast.AST, str | None]]:
    """Each ``Supervisor(...)`` built outside graph.py and the runtime: where, and its name."""
    for path, tree in sources():
        if path == GRAPH or is_runtime(path):
            continue
        for scope in ast.walk(tree):
            if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for stmt in ast.walk(scope):
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(stmt.value, ast.Call)
                    and called_name(stmt.value) == "Supervisor"
                ):
                    target = stmt.targets[0]
                    name = target.id if isinstance(target, ast.Name) else None
                    yield path, stmt.lineno, scope, name


def test_supervisors_outside_the_graph_host_one_actor() -> None:
    """Outside graph.py and the runtime, a Supervisor is built for one actor, not a graph."""
    built = {
        (p, n.lineno)
        for p, tree in sources()
        if p != GRAPH and not is_runtime(p)
        for n in calls(tree, "Supervisor")
    }
    checked = set()
    offenders = []
    for path, line, scope, name in supervisors_outside_the_root():
        checked.add((path, line))
        count, looped = supervised_actors(scope, name) if name else (0, True)
        if count != 1 or looped:
            offenders.append(f"{path}:{line} registers {count} actor(s){' in a loop' * looped}")
    unchecked = sorted(f"{p}:{line} (not assigned to a name)" for p, line in built - checked)
    assert not offenders + unchecked, "build the graph with simulated_graph():\n" + "\n".join(
        offenders + unchecked
    )


def test_only_the_graph_builds_the_cycle_runner() -> None:
    """``CycleRunner`` and its ``CycleDeps`` are constructed in graph.py and nowhere else."""
    found = [
        f"{path}:{node.lineno} {called_name(node)}"
        for path, tree in sources()
        if path != GRAPH
        for name in GRAPH_ONLY
        for node in calls(tree, name)
    ]
    assert not found


def test_the_registration_is_private_to_the_graph() -> None:
    """No module outside graph.py calls ``build_graph`` or the graph's private builders."""
    graph_tree = ast.parse((ROOT / GRAPH).read_text())
    private = {
        n.name
        for n in graph_tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("_")
    }
    assert "_register" in private
    forbidden = private | {"build_graph"}
    found = []
    for path, tree in sources():
        if path == GRAPH:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "actors.system.graph":
                found += [f"{path}: imports {a.name}" for a in node.names if a.name in forbidden]
            elif isinstance(node, ast.Call) and called_name(node) == "build_graph":
                found.append(f"{path}:{node.lineno} calls build_graph")
    assert not found


def test_the_graph_module_offers_the_two_builders() -> None:
    """graph.py defines ``live_graph`` and ``simulated_graph``, and no ``build_graph``."""
    tree = ast.parse((ROOT / GRAPH).read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert {"live_graph", "simulated_graph"} <= names
    assert "build_graph" not in names
