"""The SIGTERM guard: a Hypercorn-like worker process survives its master's terminate()."""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from quart_app.serving.worker_hooks import install_sigterm_guard


@pytest.fixture
def default_sigterm() -> Iterator[None]:
    """SIGTERM's default action in this process, as in any test runner but this suite's,
    whose reaper (tests/helpers/reaper.py) handles it; the reaper's handler comes back after."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def worker(ready: Any, release: Any) -> None:
    assert install_sigterm_guard()
    ready.set()
    release.wait(20)  # "draining"; the master's SIGTERM must not end this


async def test_a_worker_ignores_sigterm_while_its_master_lives(default_sigterm: None) -> None:
    assert not install_sigterm_guard()  # not a worker process: nothing installed here
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    process = ctx.Process(target=worker, args=(ready, release))
    process.start()
    try:
        assert ready.wait(20)
        process.terminate()  # what Hypercorn's master does to the workers still draining
        time.sleep(0.5)
        assert process.is_alive()
        release.set()
        process.join(20)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.kill()
            process.join(10)
