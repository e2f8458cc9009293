"""``python -m quart_app.serving`` with a hook for tests: a worker that starts while the file
named by ``HOLD_WORKERS`` exists waits, before it starts serving, until the file is gone
(or its parent is). A test holds a replacement worker in start-up this way, for as long
as it needs, instead of racing its start with timers.

Run as ``python -c "$LAUNCH" ARGS`` with the repository on ``PYTHONPATH`` (the workers
import this module to run :func:`run`).
"""

from __future__ import annotations

import os
import sys
import time

from quart_app.serving import supervisor
from quart_app.serving.worker import WorkerSpec, run_worker

LAUNCH = "import sys; from tests.helpers import held_start; sys.exit(held_start.main())"


def run(spec: WorkerSpec) -> None:
    gate = os.environ.get("HOLD_WORKERS", "")
    parent = os.getppid()
    while gate and os.path.exists(gate) and os.getppid() == parent:
        time.sleep(0.02)
    run_worker(spec)


def main() -> int:
    supervisor.run_worker = run  # type: ignore[attr-defined]  # the function each worker runs
    return supervisor.main(sys.argv[1:])
