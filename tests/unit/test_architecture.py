"""The layering of the code base, read from the sources (no import is executed).

- Nothing imports `app/`: it sits on top and wires everything else.
- `storage/` and `analytics/` use no other polyshop package; `kit/` (plumbing shared
  with domain packages) uses only `storage/`; domain and sync packages use those three.
- No import cycle between modules (module-level imports; an import inside a function
  runs late and is the accepted way to keep a CLI start fast).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# package -> the polyshop packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "storage": set(),
    "analytics": set(),
    "kit": {"storage"},
    "images": {"kit", "storage"},
    "search": {"kit", "storage", "analytics"},
    "etl": {"kit", "storage", "analytics"},
    "sampledata": {"storage", "images", "kit"},
    "jobs": {"storage"},
    "notifications": {"storage", "jobs"},
    "memberships": {"storage", "kit"},
    "web": {"kit", "storage", "search", "analytics", "etl", "images", "memberships"},
    "devstack": set(),
}
PACKAGES = {*ALLOWED, "app"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # Alembic scripts, loaded by Alembic itself
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str, *, top_level_only: bool) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The polyshop module an import names (the longest known prefix)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def test_packages_import_only_what_the_layering_allows() -> None:
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        package = module.split(".")[0]
        if package == "app":
            continue
        for name in _imports(path, module, top_level_only=False):
            target = name.split(".")[0]
            if target in PACKAGES and target != package and target not in ALLOWED[package]:
                wrong.append(f"{module} imports {name}")
    assert sorted(set(wrong)) == [], "\n".join(sorted(set(wrong)))


def test_no_import_cycles_between_modules() -> None:
    modules = _modules()
    graph = {
        module: {
            target
            for name in _imports(path, module, top_level_only=True)
            if (target := _resolve(name, modules)) is not None
            # a package's own __init__ always runs before its modules: no cycle edge
            and not module.startswith(target + ".")
            and target != module
        }
        for module, path in modules.items()
    }
    cycles = _cycles(graph)
    assert cycles == [], cycles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_the_checks_see_a_cycle_and_a_wrong_import() -> None:
    """The helpers themselves: a cycle is found, a clean graph passes."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
