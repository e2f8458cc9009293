"""Graceful shutdown with several Hypercorn workers.

On SIGTERM the Hypercorn master (0.17/0.18, ``hypercorn/run.py``) sets a shared event that
every worker polls; each worker stops accepting, lets in-flight requests finish within
``graceful_timeout``, runs the app's ``after_serving`` and exits. But the master waits
only for the *first* worker to exit and then calls ``terminate()`` (SIGTERM) on the rest,
and a worker keeps SIGTERM's default action -- so with two or more workers, the requests
still running on the slower workers are cut off mid-flight (the client sees the
connection drop without a response). Measured: a 2 s login with 2 workers, SIGTERM
after 0.4 s, "Server disconnected without sending a response".

The guard below makes a worker process ignore SIGTERM while its master is alive: the
master has already started the drain through the shared event, and at exit it still
joins its (non-daemon) worker processes, so it waits for the drain to finish. If the
master is gone (the worker was orphaned), SIGTERM ends the worker as before.
The guard is only installed in a process started by ``multiprocessing`` whose SIGTERM
has its default action, i.e. a Hypercorn worker -- never in a test runner or when
Hypercorn runs the app in its own process (it handles the signal itself then).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from types import FrameType

from quart import Quart

log = logging.getLogger(__name__)


def install_sigterm_guard() -> bool:
    """Install the guard if this is a Hypercorn worker; True if it was installed.

    It stays until the process exits: the master's SIGTERM may come at any time up to then.
    """
    if (
        multiprocessing.parent_process() is None
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        return False
    master = os.getppid()

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        if os.getppid() == master:
            log.debug("SIGTERM ignored: the Hypercorn master is draining this worker")
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


def init_lifecycle(app: Quart) -> None:
    @app.before_serving
    async def guard_worker() -> None:
        install_sigterm_guard()
