"""The extension's modules import one another without a cycle, deferred imports included."""

from __future__ import annotations

from tests.helpers.imports import find_cycle, graph

EXTENSION = "quart_app.jwt"


def _inside(name: str) -> bool:
    return name == EXTENSION or name.startswith(f"{EXTENSION}.")


def test_no_import_cycle_inside_the_extension() -> None:
    extension = {
        name: {target for target in targets if _inside(target)}
        for name, targets in graph().items()
        if _inside(name)
    }
    assert "quart_app.jwt.locate" in extension["quart_app.jwt.decorators"]
    assert find_cycle(extension) is None, " -> ".join(find_cycle(extension) or [])
