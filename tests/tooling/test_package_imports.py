"""How the package's modules import one another: no cycle, deferred imports included, and
the app (``create_app`` and all it imports) never reaches the server side (``serving/``)."""

from __future__ import annotations

from tests.helpers.imports import find_cycle, graph, reachable

#: The entry points: where the app meets its server and its command line.
ENTRY_POINTS = {"quart_app.asgi", "quart_app.cli"}


def _serving(name: str) -> bool:
    return name == "quart_app.serving" or name.startswith("quart_app.serving.")


def test_no_import_cycle_inside_the_package() -> None:
    imports = graph()
    assert "quart_app.services" in imports["quart_app.app"]
    assert "quart_app.routes.auth" in imports["quart_app.routes"]
    assert find_cycle(imports) is None, " -> ".join(find_cycle(imports) or [])


def test_the_app_never_imports_the_server_side() -> None:
    imports = graph()
    reached = reachable(imports, "quart_app.app")
    assert "quart_app.middleware.connection" in reached
    assert sorted(filter(_serving, reached)) == []


def test_only_the_entry_points_import_the_server_side() -> None:
    imports = graph()
    importers = {
        name
        for name, targets in imports.items()
        if not _serving(name) and any(_serving(target) for target in targets)
    }
    assert importers <= ENTRY_POINTS, sorted(importers - ENTRY_POINTS)


def test_the_finders_find() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert reachable({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}, "a") == {"a", "b", "c"}
