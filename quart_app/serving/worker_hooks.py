"""What a Hypercorn worker adds to the app it serves (:func:`install_worker_hooks`, called by
``quart_app.asgi``), first of all a graceful shutdown with several plain Hypercorn workers.

On SIGTERM the Hypercorn master (0.17/0.18, ``hypercorn/run.py``) sets a shared event that
every worker polls; each worker stops accepting, lets in-flight requests finish within
``graceful_timeout``, runs the app's ``after_serving`` and exits. But the master waits
only for the *first* worker to exit and then calls ``terminate()`` (SIGTERM) on the rest,
and a worker keeps SIGTERM's default action -- so with two or more workers, the requests
still running on the slower workers are cut off mid-flight (the client sees the
connection drop without a response).

The guard below makes a worker process ignore SIGTERM while its master is alive: the
master has already started the drain through the shared event, and at exit it still
joins its (non-daemon) worker processes, so it waits for the drain to finish. If the
master is gone (the worker was orphaned), SIGTERM has its default action.
The guard is only installed in a process started by ``multiprocessing`` whose SIGTERM
has its default action, i.e. a Hypercorn worker -- never in a test runner or when
Hypercorn runs the app in its own process (it handles the signal itself then).

Under ``python -m quart_app.serving`` the supervisor's worker (quart_app/serving/worker.py)
handles SIGTERM itself and this guard stays out. More pieces of a serving worker's
start-up live here: the guards for Hypercorn bugs (quart_app/serving/guards.py),
routing Hypercorn's listening sockets through quart_app.serving.acceptor on uvloop, and
freezing the start-up heap out of the garbage collector's scans (:func:`freeze_heap`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import threading
from types import FrameType

from quart import Quart

from . import acceptor, guards, http1, wsbounds

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


def freeze_heap() -> int:
    """Move every object alive now into the collector's permanent generation.

    A full (generation 2) collection walks every tracked object: after start-up that is
    the whole of Quart, SQLAlchemy, pydantic and their caches, stalling every request of
    the worker meanwhile; logins allocate enough to trigger one every few seconds. Frozen
    objects are never scanned again, and they stay alive anyway for the worker's
    lifetime (the figures: benchmarks/results/make-bench.md).
    Returns how many objects are frozen.
    """
    gc.collect()
    gc.freeze()
    count = gc.get_freeze_count()
    log.debug("%d start-up objects frozen out of the garbage collector's scans", count)
    return count


def install_worker_hooks(app: Quart) -> Quart:
    """Give ``app`` what a Hypercorn worker serving it needs, and return it: the bounded
    WebSocket inflation (now), and at start-up the guards, the HTTP/1.1 parser and the
    accept loop; the start-up heap frozen last. ``quart_app.asgi`` calls it: the app
    itself never imports this package."""
    wsbounds.install()

    @app.before_serving
    async def guard_worker() -> None:
        install_sigterm_guard()
        # Hypercorn's HTTP/2 bug, h2c off unless asked for (quart_app/serving/guards.py).
        guards.install(h2c=app.config["HTTP2_CLEARTEXT"])
        # HTTP/1.1 on httptools unless HTTP1_PARSER=h11 (quart_app/serving/http1.py).
        http1.install(str(app.config["HTTP1_PARSER"]).strip().lower())
        # Hypercorn starts its listening sockets after the app's start-up, so this is
        # in time for them (quart_app/serving/acceptor.py).
        if app.config["DRAIN_ACCEPT_QUEUE"] and acceptor.is_uvloop(asyncio.get_running_loop()):
            acceptor.install()

    # Registered after every other start-up hook, so it runs last.
    @app.before_serving
    async def freeze_startup_objects() -> None:
        if app.config["GC_FREEZE"]:
            freeze_heap()

    @app.after_serving
    async def unfreeze_heap() -> None:
        if app.config["GC_FREEZE"]:
            gc.unfreeze()

    return app
