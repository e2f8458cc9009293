"""One Hypercorn worker under the supervisor, running Hypercorn's own worker function.

What the supervisor adds around Hypercorn's ``asyncio_worker``/``uvloop_worker``:

* **Heartbeat.** Hypercorn's worker polls its shutdown event from its event loop every
  0.1 s. The event it gets here is a :class:`WorkerControl`, whose ``is_set`` also stamps
  the time into memory shared with the master: a loop that stops ticking (a request
  stuck in blocking code) stops the beats, and the master kills the worker after
  ``WORKER_TIMEOUT`` seconds. The first beat also tells the master the worker serves.
* **Graceful drain** (quart_app/serving/drain.py) when the master asks, on SIGTERM sent
  to the worker itself (systemd's ``KillMode=control-group`` signals every process), or
  when the master is gone.
* **No orphans.** On Linux the kernel sends the worker SIGTERM when the master dies
  (``prctl(PR_SET_PDEATHSIG)``); everywhere a watchdog thread notices the new parent
  pid. Either starts the drain, and the watchdog ends the process if the drain cannot
  finish.
* **Boot errors.** A worker that cannot start prints one line and exits with
  :data:`BOOT_ERROR_EXIT`, which the master treats as fatal (no restart loop).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from types import FrameType

from hypercorn.config import Config, Sockets

from ..startup import boot
from ..startup.settings import BOOT_ERROR_EXIT
from . import acceptor, guards
from .drain import STATE

__all__ = ["BOOT_ERROR_EXIT", "WorkerSpec", "describe_exit", "run_worker"]
#: Seconds between the watchdog's looks at the parent pid.
WATCHDOG_INTERVAL = 0.5
PR_SET_PDEATHSIG = 1


@dataclass
class WorkerSpec:
    """What a worker process is started with (pickled to the new interpreter)."""

    config: Config
    sockets: Sockets
    stop: Event
    beat: Synchronized[float]
    master: int
    drain_queue: bool = True
    #: The worker's end of a socket pair: connections handed over by the master.
    handoff: socket.socket | None = None


class WorkerControl:
    """Hypercorn's shutdown event, seen from the worker's event loop every 0.1 s."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.signalled = False
        self.served = False

    def is_set(self) -> bool:
        self.spec.beat.value = time.monotonic()
        self.served = True
        if not STATE.draining:
            if not (self.signalled or self.spec.stop.is_set() or master_gone(self.spec.master)):
                return False
            STATE.begin(float(self.spec.config.graceful_timeout))
        if not STATE.finished():
            return False
        # Hypercorn now waits up to graceful_timeout again for what is left: only for
        # what is left of the one grace period.
        self.spec.config.graceful_timeout = max(STATE.remaining(), 0.1)
        return True


#: The pid this worker was started by: the master, or the master's preloaded process
#: (multiprocessing's forkserver), which exits when the master does.
PARENT = [0]


def master_gone(master: int) -> bool:
    parent = PARENT[0] or master
    return os.getppid() != parent or (parent != master and not alive(master))


def let_go_of_the_forkserver() -> None:
    """A worker forked by the forkserver holds the write end of the pipe whose closing
    tells the forkserver that the master is gone: close it, so the forkserver exits with
    the master (and the kernel's parent-death signal reaches this worker).
    """
    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> None:
    """Have the kernel send SIGTERM to this process when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start_watchdog(control: WorkerControl) -> None:
    """End the process if its master is gone and the drain does not finish in time."""
    spec = control.spec

    def watch() -> None:
        while not master_gone(spec.master):
            time.sleep(WATCHDOG_INTERVAL)
        control.signalled = True  # the event loop's next tick starts the drain
        time.sleep(float(spec.config.graceful_timeout) + 5)
        os._exit(1)

    threading.Thread(target=watch, name="master-watchdog", daemon=True).start()


def _worker_function(config: Config) -> Callable[..., None]:
    if config.worker_class == "uvloop":
        from hypercorn.asyncio.run import uvloop_worker

        return uvloop_worker
    if config.worker_class == "asyncio":
        from hypercorn.asyncio.run import asyncio_worker

        return asyncio_worker
    raise ValueError(
        f"worker_class: quart_app.serving runs the asyncio and uvloop workers,"
        f" not {config.worker_class!r}"
    )


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def run_worker(spec: WorkerSpec) -> None:
    """The worker process's target (multiprocessing, spawn)."""
    die_with_parent()
    boot.SUPERVISED = True
    PARENT[0] = os.getppid()
    if PARENT[0] != spec.master:
        let_go_of_the_forkserver()
    control = WorkerControl(spec)
    if not alive(spec.master) or master_gone(spec.master):  # the master died before this
        os._exit(1)

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        control.signalled = True

    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl+C in a terminal reaches the whole process group: the master decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start_watchdog(control)
    acceptor.install(drain_queue=spec.drain_queue, handoff=spec.handoff)
    guards.install()
    try:
        worker = _worker_function(spec.config)
        worker(config=spec.config, sockets=spec.sockets, shutdown_event=control)
    except BaseException as error:
        if control.served:
            raise
        print(f"[{os.getpid()}] worker failed to start: {one_line(error)}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(BOOT_ERROR_EXIT) from None
    exit_now(0)


def exit_now(status: int) -> None:
    """Exit without the interpreter's teardown once everything is closed.

    After a clean stop the app has closed its pools and the loop is gone; what is left
    is freeing the whole heap object by object, which took 5-10 s per process on a busy
    machine, keeping the port's sockets and the supervisor waiting for nothing.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def describe_exit(exitcode: int | None) -> str:
    """``exit status 1`` or ``killed by signal SIGKILL``, from multiprocessing's exitcode."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"killed by signal {name}"
    return f"exit status {exitcode}"
