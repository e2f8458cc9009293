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


def _serving(run: int) -> list[int]:
    """The run's processes once the README test's server serves (its master has both its
    workers), else nothing."""
    below = descendants(run)
    for pid in below:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"quart_app.serving" in command and len(descendants(pid)) >= 2:
            return below
    return []


@pytest.mark.parametrize(
    ("signum", "workers", "to_group"),
    [
        (signal.SIGINT, [], False),
        (signal.SIGTERM, [], False),
        # Side by side (pytest-xdist, as `make check` and `make test` run): `kill` reaches
        # the controller alone; Ctrl-C at a terminal reaches every process of the run.
        (signal.SIGTERM, ["-n", "2"], False),
        (signal.SIGINT, ["-n", "2"], True),
    ],
    ids=["SIGINT", "SIGTERM", "xdist-SIGTERM", "xdist-ctrl-c"],
)
def test_an_interrupted_run_stops_at_once_and_leaves_no_process(
    tmp_path: Path, signum: signal.Signals, workers: list[str], to_group: bool
) -> None:
    # A run of a live test that serves for a while: the README's curl session.
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *workers,
            "tests/docs/test_readme.py",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the signal reaches the run alone, as `kill` would send it
    )
    try:
        deadline = time.monotonic() + 240
        processes: list[int] = []
        while time.monotonic() < deadline and run.poll() is None:
            processes = _serving(run.pid)
            if processes:
                break
            time.sleep(0.2)
        assert processes, "the live test never started its server"
        if to_group:
            os.killpg(run.pid, signum)
        else:
            os.kill(run.pid, signum)
        output, _ = run.communicate(timeout=60)
        survivors = [pid for pid in processes if _alive(pid)]
    finally:
        # Whatever the outcome, nothing of the inner run outlives this test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    text = output.decode(errors="replace")
    assert run.returncode != 0, text
    assert "passed" not in text.splitlines()[-1], text
    assert survivors == [], text
