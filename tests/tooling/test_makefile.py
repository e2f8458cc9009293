"""The Makefile's promises: `make clean` never deletes data, and a changed ``PYTHON=``
makes a new venv by itself. Run on a copy of the Makefile in a scratch directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.live import ROOT


def make(where: Path, *args: str) -> str:
    result = subprocess.run(
        ["make", "-C", str(where), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


def fake_venv(project: Path, base: str) -> None:
    """A venv whose python says it was made from ``base``."""
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f"#!/bin/sh\necho {base}\n")
    python.chmod(0o755)
    (project / ".venv" / "pyvenv.cfg").write_text("home = /x\n")


def test_make_clean_keeps_the_instance_directory(project: Path) -> None:
    instance = project / "instance"
    instance.mkdir()
    (instance / "app.db").write_bytes(b"users")
    (instance / "jwt-secret.key").write_bytes(b"secret")
    fake_venv(project, "/x")
    make(project, "clean")
    assert not (project / ".venv").exists()
    assert (instance / "app.db").read_bytes() == b"users"
    assert (instance / "jwt-secret.key").read_bytes() == b"secret"


def test_a_changed_python_makes_a_new_venv(project: Path) -> None:
    fake_venv(project, "/usr/lib/some-other/python3")
    plan = make(project, "-n", ".venv/pyvenv.cfg", f"PYTHON={sys.executable}")
    assert "rm -rf .venv" in plan and f"{sys.executable} -m venv .venv" in plan


def test_the_same_python_keeps_the_venv(project: Path) -> None:
    fake_venv(project, os.path.realpath(sys.executable))
    plan = make(project, "-n", ".venv/pyvenv.cfg", f"PYTHON={sys.executable}")
    assert "rm -rf" not in plan and "-m venv" not in plan


def test_each_tool_target_installs_what_it_runs(project: Path) -> None:
    """The docs' next steps after `make run` install their own tools first."""
    fake_venv(project, os.path.realpath(sys.executable))
    for target, extra, command in (
        ("docs", '".[dev]"', ".venv/bin/mkdocs serve --dev-addr 127.0.0.1:8001"),
        ("loadtest", '".[bench]"', ".venv/bin/locust -f benchmarks --host http://127.0.0.1:8000"),
        ("bench", '".[bench]"', ".venv/bin/python -m benchmarks.run --smoke"),
    ):
        plan = make(project, "-n", target, "BENCH_ARGS=--smoke").splitlines()
        install = next(i for i, line in enumerate(plan) if f"install --quiet -e {extra}" in line)
        run = next(i for i, line in enumerate(plan) if line.startswith(command))
        assert install < run, (target, plan)


def test_the_documented_start_up_error_names_the_run_recipe_line() -> None:
    """docs/configuration.md shows make's own line for a refused start: it is this one."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    recipe = lines.index("run: $(RUN_STAMP)") + 2  # 1-based line of its command
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert f"make: *** [Makefile:{recipe}: run] Error 3" in page


def fake_tools(project: Path) -> None:
    """ruff, mypy and pytest that say they ran and exit as MYPY_STATUS and PYTEST_STATUS
    say; mypy waits for pytest's first phase to start (it runs beside it)."""
    fake_venv(project, os.path.realpath(sys.executable))
    venv = project / ".venv"
    scripts = {
        "ruff": "echo ruff $* >> calls\n",
        "mypy": (
            "for i in $(seq 600); do [ -e started ] && break; sleep 0.1; done\n"
            "echo mypy >> calls; echo 'mypy: an error'; exit ${MYPY_STATUS:-0}\n"
        ),
        "pytest": "echo pytest $* >> calls; touch started; exit ${PYTEST_STATUS:-0}\n",
    }
    for name, body in scripts.items():
        tool = venv / "bin" / name
        tool.write_text(f"#!/bin/sh\n{body}")
        tool.chmod(0o755)
    for stamp in (".installed", ".installed-run", ".installed-bench"):
        (venv / stamp).touch()  # newer than pyproject.toml: nothing to install


@pytest.mark.parametrize("target", ["check", "test"])
@pytest.mark.parametrize(
    ("types", "tests", "fails"), [(0, 0, False), (1, 0, True), (0, 1, True), (1, 1, True)]
)
def test_types_are_checked_beside_the_tests_and_either_fails_the_run(
    project: Path, target: str, types: int, tests: int, fails: bool
) -> None:
    fake_tools(project)
    env = {**os.environ, "MYPY_STATUS": str(types), "PYTEST_STATUS": str(tests)}
    result = subprocess.run(
        ["make", "-C", str(project), target], capture_output=True, text=True, env=env, timeout=120
    )
    assert (result.returncode != 0) is fails, result.stdout + result.stderr
    calls = (project / "calls").read_text().splitlines()
    assert calls[:2] == ["ruff check .", "ruff format --check ."]
    assert "mypy" in calls  # it ran, after pytest's first phase had started
    assert calls.index("mypy") > calls.index(next(c for c in calls if c.startswith("pytest")))
    assert "mypy: an error" in result.stdout  # its report is shown, pass or fail
