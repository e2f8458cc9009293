"""The benchmark suite must not rot: run it briefly and check what it writes.

Slow on purpose (two to five minutes, the servers starting one after another):
``python -m benchmarks.run --smoke`` starts the Flask baseline, quart_app under Hypercorn,
uvicorn and granian (and with PostgreSQL + Redis when they answer) and the FastAPI peer on
loopback ports and runs every scenario for about a second. No speed is asserted; figures
from a second-long run on a shared machine mean nothing. Marked ``live`` because it starts
real servers. The fast tests below check the skip rules, the verdicts, where a smoke run
writes, and how a scenario module registers.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.helpers.debian import ensure_tool

REPO = Path(__file__).resolve().parents[2]
# benchmarks/ is not an installed package: the runner runs from the repository.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import scenarios as scenario_registry  # noqa: E402
from benchmarks.gateway import gateway_specs  # noqa: E402
from benchmarks.http2 import h2load_path  # noqa: E402
from benchmarks.nginx import nginx_binary  # noqa: E402
from benchmarks.report import Summary  # noqa: E402
from benchmarks.run import RESULTS, Options, Runner, build_scenarios, evaluate, parse_args  # noqa: E402
from benchmarks.scenarios import Scenario, Variant  # noqa: E402
from benchmarks.servers import SHARED_STORES, TargetSpec, target_specs  # noqa: E402

#: Servers start one after another, each with a load-scaled wait: minutes on a busy machine.
SMOKE_TIMEOUT_S = 900
#: The scenarios, in the runner's order.
SCENARIOS = [
    "protected-64",
    "protected-1000",
    "auth-overhead",
    "uvicorn-peer",
    "servers",
    "login-storm",
    "backends-protected",
    "backends-login",
    "locust",
    "gateway-64",
    "ws-sockets",
    "http2-tls",
    "verify-micro",
]


def _png_text(data: bytes) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG (matplotlib writes its metadata there)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, texts = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = zlib.decompress(value[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            _flags, rest = rest[:2], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("utf-8")
        pos += 12 + length
    return texts


@pytest.mark.live
def test_runner_smoke_writes_report_and_chart(tmp_path: Path) -> None:
    ensure_tool(nginx_binary, "nginx")  # the gateway scenario runs, not skips, where it can
    ensure_tool(h2load_path, "nghttp2-client")  # and so does the HTTP/2 one
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"runner failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "- **cores**:" in report and "- **cpu**:" in report and "- **python**:" in report
    assert "## Failures" not in report
    for key in SCENARIOS:
        assert f"| {key} |" in report, f"scenario {key} missing from the results table"
    targets = ("flask-gunicorn", "quart-hypercorn", "quart-uvicorn", "quart-granian")
    for target in (*targets, "fastapi-uvicorn", "nginx-quart", "nginx-flask", "nginx-ceiling"):
        assert f"| {target} |" in report
    # PostgreSQL + Redis rows, or the reason they are missing (never a failure).
    skipped = report.partition("## Skipped")[2].partition("## Targets")[0]
    assert "| quart-hypercorn-pg |" in report or "quart-hypercorn-pg" in skipped
    assert "quart_app verify_jwt_in_request" in report

    texts = _png_text((out / "chart.png").read_bytes())
    charted = texts.get("Description", "").removeprefix("scenarios: ").split(", ")
    assert charted == SCENARIOS
    # A progress line per round, so a long run shows where it is.
    assert "protected-64 round 1/1 quart-hypercorn" in proc.stdout


def _options(tmp_path: Path) -> Options:
    return Options(
        seconds=1.0,
        rounds=1,
        tool="python-loadgen",
        accounts=1,
        storm_clients=1,
        storm_rate=10.0,
        locust_users=1,
        quick_micro=True,
        out=tmp_path,
        keep=False,
        smoke=True,
    )


def test_every_variant_names_a_known_target(tmp_path: Path) -> None:
    specs = {**target_specs(), **gateway_specs()}
    scenarios = build_scenarios(_options(tmp_path))
    assert [s.key for s in scenarios] == SCENARIOS
    for scenario in scenarios:
        for variant in scenario.variants:
            assert variant.target in specs, (scenario.key, variant.target)
    assert specs["quart-hypercorn-pg"].argv == specs["quart-hypercorn"].argv
    assert specs["quart-hypercorn-pg"].stores == SHARED_STORES


def test_unreachable_backends_and_missing_programs_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:1/test")
    runner = Runner(_options(tmp_path), [])
    try:
        pg = runner.specs["quart-hypercorn-pg"]
        assert runner.server(pg.key) is None
        assert (
            "PostgreSQL at postgresql+asyncpg://postgres@127.0.0.1:1/test unreachable"
            in (runner.skipped[pg.key])
        )
        missing = TargetSpec("gone", "gone", "quart", (str(tmp_path / "no-such-server"),))
        assert runner.skip_reason(missing) is None  # not optional: starting it fails loudly
        optional = TargetSpec("gone", "gone", "quart", missing.argv, optional=True)
        assert runner.skip_reason(optional) == (
            "no-such-server is not installed (pip install -e '.[bench]')"
        )
        debian = TargetSpec("gone", "gone", "quart", ("/usr/sbin/no-such-nginx",), optional=True)
        assert runner.skip_reason(debian) == (
            "no-such-nginx is not installed (apt-get install no-such-nginx)"
        )
        assert runner.failures == [] and runner.servers == {}
    finally:
        runner.stop_all()
        runner.workdir.rmdir()


def _summary(scenario: str, target: str, variant: str, p99_ms: float) -> Summary:
    return Summary(scenario, target, variant, "t", 16, 1, 100.0, 1.0, p99_ms, 0, [], {}, {})


def test_verdicts_read_login_storm_not_the_backend_storm() -> None:
    summaries = [
        _summary("backends-login", "quart-hypercorn", "quiet", 1.0),
        _summary("backends-login", "quart-hypercorn", "+32 logins", 50.0),
        _summary("login-storm", "quart-hypercorn", "quiet", 2.0),
        _summary("login-storm", "quart-hypercorn", "+32 logins", 3.0),
        _summary("backends-protected", "quart-hypercorn", "/protected", 9.0),
    ]
    checks = evaluate(summaries, [])
    verdict = ("1.50x (p99 3.0 vs 2.0 ms)", "**met**")
    assert checks == [("login storm (quart-hypercorn): /protected p99 ≤ 2x without it", *verdict)]


def test_locust_loads_the_suite_and_never_a_study() -> None:
    """``locust -f benchmarks`` imports every .py file below it whose name has no leading
    underscore (Locust's own walk, asked here): the studies must not be among them."""
    if importlib.util.find_spec("locust") is None:
        pytest.skip("Locust is not installed (pip install -e '.[bench]')")
    # In a process of its own: importing Locust patches this one with gevent.
    walk = "import locust.argument_parser as a; print(a.parse_locustfile_paths(['benchmarks']))"
    proc = subprocess.run(
        [sys.executable, "-c", walk],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = {
        Path(path).relative_to(REPO / "benchmarks").as_posix()
        for path in ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    }
    assert "locustfile.py" in loaded
    studies = {
        path.relative_to(REPO / "benchmarks").as_posix()
        for path in (REPO / "benchmarks" / "studies").rglob("*.py")
        if path.name != "__init__.py"
    }
    assert len(studies) >= 7
    assert loaded & studies == set()
    # Neither does the runner's smoke run start one.
    runner = (REPO / "benchmarks" / "run.py").read_text(encoding="utf-8")
    scenarios = (REPO / "benchmarks" / "scenarios.py").read_text(encoding="utf-8")
    assert "studies" not in runner + scenarios


@pytest.mark.bench
def test_locust_lists_the_user_classes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "benchmarks", "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = {line.strip() for line in proc.stdout.splitlines()}
    assert {"ProtectedUser", "LoginUser", "MixedUser", "LoginStorm"} <= listed


def test_smoke_never_writes_the_committed_results_by_default(tmp_path: Path) -> None:
    opts, _ = parse_args(["--smoke"])
    try:
        assert opts.out != RESULTS
        assert opts.out.is_dir() and not any(opts.out.iterdir())
    finally:
        opts.out.rmdir()
    assert parse_args(["--smoke", "--out", str(tmp_path)])[0].out == tmp_path
    assert parse_args([])[0].out == RESULTS


def test_a_scenario_module_is_one_line_of_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    module = types.ModuleType("bench_extra")
    extra = Scenario("extra", "an added scenario", "how", "get", (Variant("quart-serve", "x"),))
    module.scenarios = lambda opts: [extra]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench_extra", module)
    monkeypatch.setattr(scenario_registry, "MODULES", (*scenario_registry.MODULES, "bench_extra"))
    keys = [s.key for s in build_scenarios(_options(tmp_path))]
    assert keys == [*SCENARIOS[:-1], "extra", "verify-micro"]


@pytest.mark.bench
def test_the_committed_chart_can_be_redrawn_from_its_report(tmp_path: Path) -> None:
    from benchmarks.chart import draw_chart, from_report

    report = REPO / "benchmarks" / "results" / "REPORT.md"
    scenarios, summaries, micro, title = from_report(report)
    keys = [key for key, _, _ in scenarios]
    # The report may predate newer scenarios; those it has come in the runner's order.
    assert len(keys) >= 10 and keys == [key for key in SCENARIOS if key in keys]
    assert {s.scenario for s in summaries} == set(keys) - {"verify-micro"}
    assert len(micro) >= 10 and "2 cores" in title
    chart = draw_chart(tmp_path / "chart.png", scenarios, summaries, micro, title)
    charted = _png_text(chart.read_bytes())["Description"].removeprefix("scenarios: ")
    assert charted.split(", ") == keys
