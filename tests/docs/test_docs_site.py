"""The documentation: the MkDocs site builds strictly, and the README stays a front page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers.live import ROOT

README_MAX_LINES = 200
#: What a measured figure looks like; those live in benchmarks/results/, not the README.
FIGURE = re.compile(r"\d\s*(µs|req/s|logins/s)|\d+(\.\d+)?\s*ms\b")


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    """A link to a missing page or anchor, or a nav entry without its file, fails here."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "jwt" / "index.html").is_file()


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert FIGURE.findall(readme) == []
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target


def test_every_setting_is_in_the_configuration_page() -> None:
    """Each key of settings.DEFAULTS is named, in backticks, on docs/configuration.md."""
    from quart_app.startup.settings import DEFAULTS

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", page))
    assert sorted(set(DEFAULTS) - named) == []


def test_every_measured_figure_says_when_where_and_how() -> None:
    results = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    assert results
    for path in results:
        text = path.read_text(encoding="utf-8")
        if path.name == "REPORT.md":  # written by benchmarks/report.py, its own header
            continue
        assert "**Recorded**" in text and "**Machine**" in text, path.name
        assert "**Command**" in text, path.name


def test_every_benchmark_command_names_a_module_that_exists() -> None:
    """A figure's command (and the docs' commands) still run after a module moves."""
    pages = [
        *(ROOT / "benchmarks" / "results").glob("*.md"),
        *(ROOT / "docs").rglob("*.md"),
        ROOT / "README.md",
    ]
    named = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for module in re.findall(r"-m (benchmarks(?:\.\w+)+)(?![\w<.])", text):
            named += 1
            path = ROOT.joinpath(*module.split("."))
            assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), (
                page.name,
                module,
            )
        for file in re.findall(r"\bbenchmarks/[\w/]+\.(?:py|lua)\b", text):
            named += 1
            assert (ROOT / file).is_file(), (page.name, file)
    assert named > 10
