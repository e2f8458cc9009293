"""The README's curl session, pasted into bash against a live server, answers as it says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.live import ROOT, Server

pytestmark = pytest.mark.live

SERVE = [sys.executable, "-m", "quart_app.serving"]


def session_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A session with curl", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def expected_answers(block: str) -> list[re.Pattern[str]]:
    """Each ``# {...}`` comment line, with ``eyJ...`` standing for any token."""
    answers = [line[2:] for line in block.splitlines() if line.startswith("# {")]
    return [re.compile(re.escape(a).replace(re.escape("eyJ..."), 'eyJ[^"]+')) for a in answers]


def test_the_curl_session_answers_as_written(tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl is needed to paste the README's session"
    block = session_block()
    assert "API=http://127.0.0.1:8000\n" in block
    expected = expected_answers(block)
    assert len(expected) >= 8
    with Server(tmp_path / "instance", workers=2, launcher=SERVE) as server:
        script = block.replace("API=http://127.0.0.1:8000\n", f"API={server.url}\n")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    answers = result.stdout.splitlines()
    assert len(answers) == len(expected), answers
    for pattern, answer in zip(expected, answers, strict=True):
        assert pattern.fullmatch(answer), (pattern.pattern, answer)
