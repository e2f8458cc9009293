"""The package's import graph, read from its source: which of its modules each one
imports at run time (deferred imports included), and the walks over it."""

from __future__ import annotations

import ast
from pathlib import Path

import quart_app

ROOT = Path(quart_app.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for path in ROOT.rglob("*.py") if "migrations" not in path.parts
    }


def type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def for_help(lines: list[str], node: ast.stmt) -> bool:
    """A deferred import whose comment (just above it) says it keeps ``--help`` fast."""
    above = lines[node.lineno - 2] if node.lineno >= 2 else ""
    return "--help" in above and above.strip().startswith("#")


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that ``name`` imports at run time, at any depth (an import
    inside a function counts: a deferred import can close a cycle too), but for the
    deferrals that keep ``quart-app --help`` fast."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def target(base: str, alias: str) -> str:
        full = f"{base}.{alias}" if base else alias
        while full not in modules and "." in full:
            full = full.rsplit(".", 1)[0]
        return full

    def visit(node: ast.AST, deferred: bool) -> None:
        if isinstance(node, ast.If) and type_checking(node):
            for statement in node.orelse:
                visit(statement, deferred)
            return
        if isinstance(node, ast.ImportFrom | ast.Import) and not (
            deferred and for_help(lines, node)
        ):
            if isinstance(node, ast.Import):
                found.update(target("", alias.name) for alias in node.names)
            else:
                base = node.module or ""
                if node.level:
                    parent = package[: len(package) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                found.update(target(base, alias.name) for alias in node.names)
        inside = deferred or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(source), False)
    return {module for module in found if module in modules and module != name}


def graph() -> dict[str, set[str]]:
    """Each module of the package, and the package's modules it imports."""
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen
