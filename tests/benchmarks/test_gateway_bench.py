"""The gateway benchmark's wiring: its targets, servers and goals (no load is generated)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.gateway import (  # noqa: E402
    BACKENDS,
    PATH,
    FrontedServer,
    gateway_checks,
    gateway_specs,
    make_server,
)
from benchmarks.servers import Server, target_specs  # noqa: E402


def test_every_fronted_target_has_a_verifier_behind_it(tmp_path: Path) -> None:
    specs = {**target_specs(), **gateway_specs()}
    for front, verifier in BACKENDS.items():
        assert verifier in specs and specs[front].optional
        server = make_server(specs[front], tmp_path, "s" * 40)
        assert isinstance(server, FrontedServer)
        assert server.verifier.spec.key == verifier
    plain = make_server(specs["quart-hypercorn"], tmp_path, "s" * 40)
    assert type(plain) is Server


def test_goals_are_judged_from_the_medians() -> None:
    rows = {"nginx-quart": 1000.0, "nginx-flask": 400.0, "nginx-ceiling": 1050.0}

    def get(scenario: str, target: str, variant: str) -> SimpleNamespace | None:
        assert (scenario, variant) == ("gateway-64", PATH)
        return SimpleNamespace(rps=rows[target])

    checks = gateway_checks(get, lambda ok: "met" if ok else "missed")
    assert [(c[1], c[2]) for c in checks] == [
        ("2.50x (1,000 vs 400 req/s)", "missed"),
        ("0.95x (1,000 vs 1,050 req/s)", "met"),
    ]
    assert gateway_checks(lambda *a: None, str) == []
