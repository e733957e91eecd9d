"""The import layers of SPEC section 2: lower layers never import higher ones."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import trainforge

PACKAGE = Path(trainforge.__file__).parent

LAYERS = {
    "errors": 0,
    "registry": 0,
    "hooks": 0,
    "seeding": 0,
    "records": 0,
    "logs": 0,
    "_version": 0,
    "config": 1,
    "tracking": 1,
    "checkpoint": 2,
    "engine": 2,
    "jobs": 2,
    "lightning": 3,
    "zoo": 3,
    "production": 3,
    "ui": 3,
    "train": 4,
    "cli": 5,
}
# third-party packages only one subpackage may import
OWNERS = {"omegaconf": "config", "lightning": "lightning", "pytorch_lightning": "lightning"}
# subpackages that must not import torch at module import time
NO_TORCH_AT_IMPORT = (
    "config",
    "logs",
    "tracking",
    "jobs",
    "errors",
    "registry",
    "hooks",
    "seeding",
)


def _component(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "trainforge" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module top level) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, id(node) in top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno, id(node) in top))
    return found


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        name = rel.parts[0].removesuffix(".py")
        if name == "__init__":
            continue
        yield path, name


def test_every_component_has_a_layer():
    unknown = {name for _, name in _sources()} - set(LAYERS)
    assert not unknown, f"add these to LAYERS: {unknown}"


def test_no_upward_imports():
    violations = []
    for path, name in _sources():
        for module, line, _ in _imports(path):
            target = _component(module)
            if target in LAYERS and LAYERS[target] > LAYERS[name]:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
            if target in LAYERS and target != name and LAYERS[target] == LAYERS[name] != 0:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports sibling {module}")
    assert not violations, "\n".join(violations)


def test_owned_third_party_imports():
    violations = []
    for path, name in _sources():
        for module, line, _ in _imports(path):
            owner = OWNERS.get(module.split(".")[0])
            if owner is not None and owner != name:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


def test_core_modules_do_not_import_torch_at_module_level():
    violations = []
    for path, name in _sources():
        if name not in NO_TORCH_AT_IMPORT:
            continue
        for module, line, top in _imports(path):
            if top and module.split(".")[0] in ("torch", "lightning", "numpy"):
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("module", ["trainforge", "trainforge.config", "trainforge.cli"])
def test_light_modules_import_without_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycles_between_modules():
    """No module imports, even lazily, a module that imports it back (a circle)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        graph[name] = {
            module
            for module, _, _ in _imports(path)
            if module.startswith("trainforge.") and module != name
        }
    known = set(graph)
    # an import of a package's name goes through its __init__, which only re-exports
    edges = {
        n: {m for m in targets if m in known and not m.count(".") < 2}
        for n, targets in graph.items()
    }
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)
