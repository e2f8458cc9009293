"""Ctrl-C stops a test run at once and leaves no process of it behind (tests/helpers/reaper.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.live import ROOT
from tests.helpers.reaper import descendants

pytestmark = pytest.mark.live


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_at_once_and_leaves_no_process(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # A run of a live test that serves for a while: the README's curl session.
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/docs/test_readme.py"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the signal reaches the run alone, as `kill` would send it
    )
    try:
        deadline = time.monotonic() + 240
        workers: list[int] = []
        while time.monotonic() < deadline and run.poll() is None:
            below = descendants(run.pid)
            if len(below) >= 3:  # the server's master and its two workers
                workers = below
                break
            time.sleep(0.2)
        assert workers, "the live test never started its server"
        os.kill(run.pid, signum)
        output, _ = run.communicate(timeout=60)
        survivors = [pid for pid in workers if _alive(pid)]
    finally:
        # Whatever the outcome, nothing of the inner run outlives this test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    text = output.decode(errors="replace")
    assert run.returncode != 0, text
    assert "passed" not in text.splitlines()[-1], text
    assert survivors == [], text
