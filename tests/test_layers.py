"""The package's layers, enforced (issue 16): ``ir`` <- ``passes``, ``ir`` <- ``lowering``;
``frontends`` -> ``ir`` only; the CLI and the compiler on top; leaf modules (errors, limits,
atomic writes, ...) import nothing of the project but the errors. Every import counts,
also those inside functions; imports only for type checkers do not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spikejit"

LEAVES = {"errors", "limits", "graph_limits", "array_files", "atomic", "version", "lru"}
#: What each layer may import, besides itself and the leaves.
ALLOWED: dict[str, set[str]] = {
    "leaf": set(),
    "ir": set(),
    "passes": {"ir"},
    "lowering": {"ir"},
    "frontends": {"ir"},
}


def layer_of(module: str) -> str:
    """``spikejit.ir.ops.base`` -> ``ir``; a leaf module -> ``leaf``; others by name."""
    parts = module.split(".")
    if len(parts) < 2:
        return "top"
    name = parts[1]
    return "leaf" if name in LEAVES else name


def project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("spikejit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("spikejit"):
            found.add(node.module)
            # ``from spikejit.ir import ops``: the submodule is what is imported
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        out.append((name, path))
    return out


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_respect_the_layers(module: str, path: Path) -> None:
    layer = layer_of(module)
    if layer not in ALLOWED:
        return  # the top: compiler, model_io, cli, the package itself
    allowed = {layer, "leaf"} | ALLOWED[layer]
    bad = sorted(i for i in project_imports(path)
                 if layer_of(i) not in allowed and not (layer == "leaf" and i == "spikejit.errors"))
    if layer == "leaf":
        bad = [i for i in bad if i != "spikejit.errors"]
    assert not bad, f"{module} ({layer}) imports {bad}; allowed: {sorted(allowed)}"


JAX_FREE = ("ir", "passes", "frontends", "leaf")


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_ir_passes_and_frontends_do_not_use_jax(module: str, path: Path) -> None:
    """The oracle and the compiler's front half run without JAX: backend questions belong
    to the lowering."""
    if layer_of(module) not in JAX_FREE:
        return
    tree = ast.parse(path.read_text())
    used = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    used |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {u for u in used if u == "jax" or u.startswith(("jax.", "jaxlib"))}, module


def test_no_import_cycles_among_modules() -> None:
    """Modules that import each other at import time (top-level imports only)."""
    graph: dict[str, set[str]] = {}
    names = {m for m, _ in modules()}
    for module, path in modules():
        tree = ast.parse(path.read_text())
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                    "spikejit") and node.level == 0:
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("spikejit")}
        graph[module] = {d for d in deps if d in names and d != module}
    # Edges to a package (its __init__) are left out: submodules importing siblings through
    # their package, while it initialises, is how Python packages work.
    packages = {m for m, p in modules() if p.name == "__init__.py"}
    graph = {m: deps - packages for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d):], d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
