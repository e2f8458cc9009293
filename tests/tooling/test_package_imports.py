"""How the package's modules import one another: no cycle, deferred imports included, and
the app (``create_app`` and all it imports) never reaches the server side (``serving/``)."""

from __future__ import annotations

import ast
from pathlib import Path

import quart_app

ROOT = Path(quart_app.__file__).parent
#: The entry points: where the app meets its server and its command line.
ENTRY_POINTS = {"quart_app.asgi", "quart_app.cli"}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_name(path): path for path in ROOT.rglob("*.py") if "migrations" not in path.parts}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _for_help(lines: list[str], node: ast.stmt) -> bool:
    """A deferred import whose comment (just above it) says it keeps ``--help`` fast."""
    above = lines[node.lineno - 2] if node.lineno >= 2 else ""
    return "--help" in above and above.strip().startswith("#")


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
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
        if isinstance(node, ast.If) and _type_checking(node):
            for statement in node.orelse:
                visit(statement, deferred)
            return
        if isinstance(node, ast.ImportFrom | ast.Import) and not (
            deferred and _for_help(lines, node)
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


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
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


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def _serving(name: str) -> bool:
    return name == "quart_app.serving" or name.startswith("quart_app.serving.")


def test_no_import_cycle_inside_the_package() -> None:
    graph = _graph()
    assert "quart_app.services" in graph["quart_app.app"]
    assert "quart_app.routes.auth" in graph["quart_app.routes"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_app_never_imports_the_server_side() -> None:
    graph = _graph()
    reached = _reachable(graph, "quart_app.app")
    assert "quart_app.middleware.connection" in reached
    assert sorted(filter(_serving, reached)) == []


def test_only_the_entry_points_import_the_server_side() -> None:
    graph = _graph()
    importers = {
        name
        for name, targets in graph.items()
        if not _serving(name) and any(_serving(target) for target in targets)
    }
    assert importers <= ENTRY_POINTS, sorted(importers - ENTRY_POINTS)


def test_the_finders_find() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert _reachable({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}, "a") == {"a", "b", "c"}
