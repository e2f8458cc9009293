"""The documentation: the MkDocs site builds strictly, and the README stays a front page."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


#: The pages a newcomer follows in order, after the README's `make run`.
FIRST_PAGES = ("README.md", "docs/index.md", "docs/configuration.md", "docs/benchmarks.md")
#: Pages whose snippets a newcomer runs beside `make run`.
SNIPPET_PAGES = (*FIRST_PAGES, "docs/websockets.md")


def runtime_distributions() -> set[str]:
    """What `make run` installs (`pip install -e .`): the dependencies, recursively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    todo = [Requirement(spec) for spec in project["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(requirement.name) or ():
            needed = Requirement(spec)
            if needed.marker is None or needed.marker.evaluate({"extra": ""}):
                todo.append(needed)
    return seen


def code_blocks(text: str, language: str) -> list[tuple[str, str]]:
    """Each fenced block in ``language``, with the paragraph before it."""
    found = re.finditer(rf"((?:[^\n]+\n)*)\n```{language}\n((?:(?!```)[\s\S])*)```", text)
    return [(match.group(1), match.group(2)) for match in found]


def test_every_command_and_snippet_works_after_make_run() -> None:
    """A tool or library `make run` does not install is reached through the make target
    that installs it, or the text before the snippet says what to install."""
    runtime = runtime_distributions()
    scripts = {"python", "python3", "pip", "activate"} | {
        entry.name
        for name in runtime
        for entry in metadata.distribution(name).entry_points
        if entry.group == "console_scripts"
    }
    scripts |= {"quart-app"}  # the project's own
    modules = metadata.packages_distributions()
    for page in SNIPPET_PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for tool in re.findall(r"\.venv/bin/([\w.-]+)", text):
            assert tool in scripts, f"{page}: .venv/bin/{tool} is not there after make run"
        for before, code in code_blocks(text, "python"):
            imported = {
                ((node.module or "") if isinstance(node, ast.ImportFrom) else alias.name).split(
                    "."
                )[0]
                for node in ast.walk(ast.parse(code))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names
            }
            for module in sorted(imported - set(sys.stdlib_module_names) - {"quart_app"}):
                dists = {canonicalize_name(d) for d in modules.get(module, [module])}
                if not dists & runtime:
                    assert f"pip install {module}" in before, f"{page}: {module} not installed"
