"""The shape of the code, checked: layers that only import downward, no import cycles, and
no function longer than a screen.

The layers, bottom to top (docs/DESIGN.md, "Layers"):

1. base - errors, safe file reading, safe writing, units, the cache registry (``trainwall.core``);
2. catalogs - what is trained and what it runs on (``trainwall.models``, ``trainwall.hardware``);
3. schema - the configuration file (``trainwall.core.config``);
4. cost model - the one model of the world and its walls (``trainwall.optimizer.costmodel``
   and the formula modules beside it);
5. search - the Pyomo formulations, the HiGHS adapter, the certifiers (the rest of
   ``trainwall.optimizer``); they receive numbers, never missions;
6. missions - missions, plans, solving, grading, variants (``trainwall.challenges``);
7. entry points - the CLI, the API, figures, reports (``trainwall`` itself).

A module may import its own layer or any layer below, never one above, and the
imports (module-level and the lazy ones inside functions alike) form no cycle. A new
module must be placed in a layer here before it can land.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> the import package it is mapped to (pyproject.toml's package-dir).
FOLDERS = {"core": "trainwall.core", "hardware": "trainwall.hardware", "models": "trainwall.models",
           "optimizer": "trainwall.optimizer", "challenges": "trainwall.challenges", "trainwall": "trainwall"}
COST_MODEL = ("trainwall.optimizer", "trainwall.optimizer.costmodel", "trainwall.optimizer.memory", "trainwall.optimizer.compute",
              "trainwall.optimizer.datapipe", "trainwall.optimizer.stability", "trainwall.optimizer.precision",
              "trainwall.optimizer.walls", "trainwall.optimizer.training_run")
#: Bottom to top: (layer, the module names or package prefixes it holds). A package's
#: ``__init__`` sits with the lowest of its modules (it re-exports, it does not reach up).
LAYERS = (
    ("base", ("trainwall.core", "trainwall.core.errors", "trainwall.core.fileformats", "trainwall.core.outputs",
              "trainwall.core.units", "trainwall.core.caches")),
    ("catalogs", ("trainwall.models.", "trainwall.hardware.", "trainwall.models", "trainwall.hardware")),
    ("schema", ("trainwall.core.config",)),
    ("cost model", COST_MODEL + ("trainwall.optimizer.costmodel.",)),
    ("search", ("trainwall.optimizer.",)),
    ("missions", ("trainwall.challenges", "trainwall.challenges.")),
    ("entry points", ("trainwall", "trainwall.")),
)
#: The longest function allowed, in lines from ``def`` to its last line.
MAX_FUNCTION_LINES = 60


def module_files() -> dict[str, Path]:
    """Every source module by its import name."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def layer_of(module: str) -> int:
    """The index of the first (lowest) layer that claims ``module``: exact names before prefixes."""
    for index, (_, names) in enumerate(LAYERS):
        if module in names:
            return index
    for index, (_, names) in enumerate(LAYERS):
        if any(name.endswith(".") and module.startswith(name) for name in names):
            return index
    raise LookupError(module)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> nx.DiGraph:
    files = module_files()
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        graph.add_edges_from((module, target) for target in imports_of(path, set(files)) if target != module)
    return graph


def test_every_module_has_a_layer():
    unplaced = []
    for module in module_files():
        try:
            layer_of(module)
        except LookupError:
            unplaced.append(module)
    assert not unplaced, f"place these modules in a layer of tests/test_architecture.py: {unplaced}"


def test_imports_only_go_down():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, b in import_graph().edges if layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ is imported with every module inside it; it is not a cycle to re-export
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, cycles


def test_the_checker_sees_an_upward_import(tmp_path):
    """The contract can fail: a cost-model module importing a mission module is caught."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from trainwall.challenges.mission import mission\n", encoding="utf-8")
    found = imports_of(path, {"trainwall.challenges.mission"})
    assert found == {"trainwall.challenges.mission"}
    assert layer_of("trainwall.challenges.mission") > layer_of("trainwall.optimizer.costmodel")
    assert layer_of("trainwall.optimizer.costmodel.evaluate") == layer_of("trainwall.optimizer.memory")


@pytest.mark.parametrize("folder", [*FOLDERS, "bench"])
def test_no_function_is_longer_than_a_screen(folder):
    long = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "\n".join(long)
