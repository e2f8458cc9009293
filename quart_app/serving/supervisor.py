"""``python -m quart_app.serving``: a supervisor (modelled on gunicorn's arbiter) around
Hypercorn's own workers. It takes every ``hypercorn`` command-line option unchanged.

One loop in the master; signals are queued by their handlers and handled there.

* **Listening sockets** are the master's (quart_app/serving/listeners.py): a taken
  address fails at once with one line naming its holder; with several workers on Linux
  each worker slot has its own ``SO_REUSEPORT`` socket, so the kernel spreads new
  connections evenly (plain ``hypercorn -w N`` shares one socket, and under a burst the
  first worker to wake takes most connections).
* **Dead workers** are reaped, logged with their pid and exit status or signal, and
  replaced at once, from a preloaded process (``WORKER_PRELOAD``: multiprocessing's
  forkserver with the app's modules imported once), so the replacement serves within
  a fraction of a second instead of importing the app anew. A death wakes the loop at
  once (the worker's pidfd on Linux, as it exits); before it is even logged, new
  connections are steered to the slots that serve (``REUSEPORT_STEERING``,
  listeners.py) until the replacement serves; connections the kernel had queued on the
  dead worker's socket are accepted by the master and handed to a worker that serves
  (a socket pair per worker, ``SCM_RIGHTS``; acceptor.py serves them), plain TCP under
  the uvloop worker (a TLS one waits for the replacement). Deaths that come fast
  (``CRASH_LIMIT`` within ``CRASH_WINDOW`` seconds) back off, then stop the server
  with a message. A worker that exits with
  :data:`~quart_app.serving.worker.BOOT_ERROR_EXIT` (it could not start) stops the
  server: restarting it would fail the same way.
* **Hung workers**: each worker's event loop beats every 0.1 s; one silent for
  ``WORKER_TIMEOUT`` seconds (default 30) is killed and replaced.
* **SIGTERM / SIGINT**: graceful stop. New connections are refused; each worker drains
  (quart_app/serving/drain.py) within ``graceful_timeout``. A second one, or SIGQUIT,
  stops at once.
* **SIGHUP**: zero-downtime reload. The command line and config file are read again,
  new workers (a new interpreter each: new code) start on the same sockets, and only
  once every one of them serves are the old ones drained. The preloaded process holds
  the old code: it is retired once no worker forked from it is left. If a new worker fails, the
  old ones keep serving.
* **SIGTTIN / SIGTTOU**: one worker more / fewer.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import forkserver, get_context
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext, ForkServerProcess, SpawnProcess
from typing import Any

from hypercorn import __main__ as hypercorn_cli
from hypercorn.config import Config

from .listeners import AddressInUse, Listeners
from .worker import BOOT_ERROR_EXIT, WorkerSpec, describe_exit, run_worker

log = logging.getLogger("quart_app.serve")

#: This many unexpected worker deaths within CRASH_WINDOW seconds stop the server.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
#: Longest pause before replacing a worker while workers keep dying.
MAX_BACKOFF = 5.0
#: Seconds between the loop's looks at heartbeats when nothing else wakes it.
TICK = 0.25
HANDLED_SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGTTIN", "SIGTTOU")
#: What the preloaded process imports once (an import that fails is skipped): the app's
#: modules and what they load, not the app itself (its settings are read in each worker).
PRELOAD = (
    "quart_app.app",
    "quart_app.serving.worker_hooks",
    "quart_app.serving.worker",
    "hypercorn.asyncio.run",
    "uvloop",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "redis.asyncio",
    "quart_app.serving.preloaded",  # last: freezes what the imports above made
)


@dataclass
class Worker:
    process: SpawnProcess | ForkServerProcess
    spec: WorkerSpec
    slot: int
    generation: int
    forked: bool = False  # from the preloaded process (forkserver)
    started: float = field(default_factory=time.monotonic)
    stopping: bool = False
    killed_because: str = ""
    #: A file descriptor that becomes readable when the process exits (Linux 5.3+).
    pidfd: int | None = None
    gone: bool = False
    #: Its exit status was lost: the preloaded process that forked it ended first.
    status_lost: bool = False
    #: The master's end of a socket pair: connections handed to this worker (acceptor.py).
    handoff: socket.socket | None = None

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    @property
    def serving(self) -> bool:
        return self.spec.beat.value > 0.0

    def exited(self) -> bool:
        """The process has ended. Its pidfd says so the moment it exits; its sentinel
        (a forked worker's exit status, relayed by the forkserver) a moment later."""
        if self.gone:
            return True
        if self.pidfd is not None and select.select([self.pidfd], [], [], 0)[0]:
            self.gone = True
        return self.gone

    def ended(self) -> bool:
        """The process has ended and its exit status is in. A preloaded process that ends
        first (a signal to the whole process group: Ctrl-C, ``timeout``, systemd's stop)
        answers 255 for every worker it forked while they are still draining; only their
        pidfds say when they end."""
        if self.process.exitcode is None:
            return False
        if self.pidfd is not None and not self.exited():
            self.status_lost = True
            return False
        return True

    def close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.handoff is not None:
            self.handoff.close()
            self.handoff = None

    def stop(self) -> None:
        self.stopping = True
        self.spec.stop.set()

    def kill(self, reason: str) -> None:
        self.killed_because = reason
        if not self.ended() and self.pid:
            os.kill(self.pid, signal.SIGKILL)


class Supervisor:
    def __init__(
        self,
        config: Config,
        *,
        worker_timeout: float = 30.0,
        drain_queue: bool = True,
        reload_config: Callable[[], Config] | None = None,
        preload: bool = True,
        steering: bool = True,
    ) -> None:
        self.config = config
        self.worker_timeout = worker_timeout
        self.drain_queue = drain_queue
        self.reload_config = reload_config
        self.ctx = get_context("spawn")
        self.preload = preload and sys.platform.startswith("linux")
        self.fork_ctx = get_context("forkserver")
        if self.preload:
            self.fork_ctx.set_forkserver_preload(list(PRELOAD))
        #: The preloaded process holds code older than a reload: fork from it no more.
        self.forkserver_stale = False
        self.workers: list[Worker] = []
        self.signals: collections.deque[int] = collections.deque()
        self.generation = 0
        self.reloading: int | None = None  # the generation being started by a reload
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_status = 0
        self.deaths: collections.deque[float] = collections.deque()
        self.respawn_at = 0.0
        self.listeners: Listeners | None = None
        self.steering = steering
        #: The slots whose worker serves (as of the last _steer), and connections handed.
        self._serving: set[int] = set()
        self._handed = 0
        #: Every slot has served once (steering at the first start is not logged).
        self.started = False

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        problem = check_tls(self.config)
        if problem:
            print(f"Error: {problem}", file=sys.stderr)
            return BOOT_ERROR_EXIT
        try:
            self.listeners = Listeners.open(self.config, steering=self.steering)
        except AddressInUse as error:
            print(f"Error: {error}", file=sys.stderr)
            return 1
        wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        for name in HANDLED_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self._queue_signal)
        log.info(
            "supervisor %d: %d worker(s), worker timeout %.0f s",
            os.getpid(),
            self.config.workers,
            self.worker_timeout,
        )
        try:
            self._spawn_missing()
            while self.workers or not self.stopping:
                # A sentinel that has answered stays readable: wait on it only until then.
                sentinels: list[Any] = [
                    w.process.sentinel for w in self.workers if w.process.exitcode is None
                ]
                pidfds = [w.pidfd for w in self.workers if w.pidfd is not None and not w.gone]
                queued = self._orphaned_sockets()
                wait([wakeup_r, *sentinels, *pidfds, *queued], timeout=TICK)
                self._steer()  # a worker that just exited gets no new connection
                self._hand_off()
                try:
                    while os.read(wakeup_r, 512):
                        pass
                except BlockingIOError:
                    pass
                while self.signals:
                    self._handle_signal(self.signals.popleft())
                self._reap()
                self._check_heartbeats()
                self._advance_reload()
                self._steer()
                self._spawn_missing()
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wakeup_r)
            os.close(wakeup_w)
            for worker in self.workers:
                worker.kill("the supervisor is exiting")
            if self.listeners is not None:
                self.listeners.close()
        log.info("stopped (exit status %d)", self.exit_status)
        return self.exit_status

    def _queue_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    def _handle_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if name in {"SIGTERM", "SIGINT"}:
            if self.stopping:
                self._stop_now(f"{name} again")
            else:
                self._stop_gracefully(name)
        elif name == "SIGQUIT":
            self._stop_now(name)
        elif name == "SIGHUP":
            self._reload()
        elif name in {"SIGTTIN", "SIGTTOU"} and not self.stopping:
            self.config.workers = max(1, self.config.workers + (1 if name == "SIGTTIN" else -1))
            log.info("%s: %d worker(s)", name, self.config.workers)
            self._retire_surplus()

    # -- stopping -----------------------------------------------------------------------

    def _stop_gracefully(self, reason: str, status: int | None = None) -> None:
        if status is not None:
            self.exit_status = status
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + float(self.config.graceful_timeout) + 10
        log.info("%s: stopping; workers drain for up to %s s", reason, self.config.graceful_timeout)
        # New connections are refused once the workers close their copies too.
        if self.listeners is not None:
            self.listeners.close()
        for worker in self.workers:
            worker.stop()

    def _stop_now(self, reason: str) -> None:
        log.info("%s: stopping now", reason)
        self.stopping = True
        for worker in self.workers:
            worker.kill(reason)

    # -- workers ------------------------------------------------------------------------

    def _spawn(self, slot: int, generation: int, config: Config) -> Worker:
        assert self.listeners is not None
        forked = self.preload and not self.forkserver_stale
        ctx: BaseContext = self.fork_ctx if forked else self.ctx
        spec = WorkerSpec(
            config=config,
            sockets=self.listeners.sockets(slot),
            stop=ctx.Event(),
            beat=ctx.Value("d", 0.0, lock=False),
            master=os.getpid(),
            drain_queue=self.drain_queue,
        )
        ours = None
        # Handed connections are served by the uvloop worker's draining accept loop.
        if self.listeners.steering and self.drain_queue and config.worker_class == "uvloop":
            ours, spec.handoff = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            ours.setblocking(False)  # a worker that does not read is passed over
        process = ctx.Process(target=run_worker, kwargs={"spec": spec}, daemon=False)  # type: ignore[attr-defined]
        try:
            process.start()
        finally:
            if spec.handoff is not None:
                spec.handoff.close()  # the worker has its copy
        worker = Worker(process, spec, slot, generation, forked=forked, pidfd=_pidfd(process))
        worker.handoff = ours
        self.workers.append(worker)
        log.info("worker %d started (slot %d)", worker.pid, slot)
        return worker

    def _spawn_missing(self) -> None:
        if self.stopping or self.reloading is not None or time.monotonic() < self.respawn_at:
            return
        taken = {w.slot for w in self.workers if w.generation == self.generation and not w.stopping}
        for slot in range(self.config.workers):
            if slot not in taken:
                self._spawn(slot, self.generation, self.config)

    def _retire_surplus(self) -> None:
        for worker in self.workers:
            if worker.generation == self.generation and worker.slot >= self.config.workers:
                worker.stop()

    def _steer(self) -> None:
        """New connections only to the slots whose worker serves (listeners.py)."""
        if self.listeners is None or self.stopping:
            return
        serving = {w.slot for w in self.workers if w.serving and not w.stopping and not w.exited()}
        self._serving = serving
        was_started = self.started
        self.started = self.started or len(serving) >= self.config.workers
        if not self.listeners.steer(serving) or not was_started:
            return
        if self.listeners.steered_to is None:
            log.info("every slot serves: new connections go to all of them")
        else:
            log.info(
                "new connections go to slot(s) %s only until the others serve",
                ", ".join(map(str, sorted(serving))),
            )

    def _orphaned_sockets(self) -> list[socket.socket]:
        """While new connections are steered: the sockets of the slots that do not serve."""
        if self.listeners is None or self.stopping or self.listeners.steered_to is None:
            return []
        return self.listeners.idle_sockets(self._serving)

    def _hand_off(self) -> None:
        """Connections that reached a dead worker's socket before the steering (or whose
        handshake ended after it) are taken from it and handed to a worker that serves,
        instead of waiting for the replacement."""
        sockets = self._orphaned_sockets()
        if not sockets:
            return
        targets = [
            w
            for w in self.workers
            if w.slot in self._serving and w.handoff is not None and not w.stopping
        ]
        if not targets:
            return
        for sock in sockets:
            while True:
                try:
                    conn, _address = sock.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    break
                except OSError as error:
                    log.warning("taking a connection from a dead worker's socket: %s", error)
                    break
                with conn:
                    self._handed += 1
                    for attempt in range(len(targets)):
                        target = targets[(self._handed + attempt) % len(targets)]
                        try:
                            assert target.handoff is not None
                            socket.send_fds(target.handoff, [b"c"], [conn.fileno()])
                            break
                        except OSError:
                            continue

    def _reap(self) -> None:
        dead = [w for w in self.workers if w.ended()]
        for worker in dead:
            worker.process.join()
            self.workers.remove(worker)
            worker.close_pidfd()
        if dead:
            self._steer()  # before anything else: new connections to the live slots
        for worker in dead:
            self._reaped(worker, worker.process.exitcode or 0)
        if self.forkserver_stale and not any(w.forked for w in self.workers):
            # Every worker of the old code is gone: the next fork preloads the new code.
            forkserver._forkserver._stop()  # type: ignore[attr-defined]
            self.forkserver_stale = False
        if self.listeners is not None and not self.stopping:
            self.listeners.trim(max([self.config.workers, *(w.slot + 1 for w in self.workers)]))
            self._steer()  # a closed socket moved the last one into its place

    def _reaped(self, worker: Worker, exitcode: int) -> None:
        how = describe_exit(exitcode)
        if worker.status_lost:
            how = "exit status unknown: the preloaded process that forked it ended first"
        if worker.stopping or self.stopping:
            level = logging.INFO if exitcode == 0 or worker.status_lost else logging.WARNING
            log.log(level, "worker %d stopped (%s)", worker.pid, how)
            return
        if exitcode == BOOT_ERROR_EXIT and not worker.serving:
            if worker.generation == self.reloading:
                self._abort_reload(f"a new worker could not start ({how})")
                return
            # The worker has said why, in one line: this is the master's part, at INFO.
            log.info("worker %d could not start (%s); stopping the server", worker.pid, how)
            self._stop_gracefully("boot error", status=BOOT_ERROR_EXIT)
            return
        because = f" ({worker.killed_because})" if worker.killed_because else ""
        log.warning("worker %d died (%s)%s", worker.pid, how, because)
        if worker.generation == self.reloading:
            self._abort_reload(f"a new worker died ({how})")
            return
        self._count_death(worker, how)

    def _count_death(self, worker: Worker, how: str) -> None:
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - CRASH_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) >= CRASH_LIMIT:
            log.error(
                "workers died %d times within %.0f s (last: worker %d, %s); stopping the"
                " server: see the log above for why they die",
                len(self.deaths),
                CRASH_WINDOW,
                worker.pid,
                how,
            )
            self._stop_gracefully("crash loop", status=1)
            return
        if len(self.deaths) > 1:
            delay = min(MAX_BACKOFF, 0.25 * 2 ** (len(self.deaths) - 2))
            self.respawn_at = now + delay
            log.warning("worker deaths are coming fast: next start in %.2f s", delay)

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        boot_limit = float(self.config.startup_timeout) + self.worker_timeout
        for worker in self.workers:
            if worker.killed_because:
                continue
            if worker.serving:
                silent = now - worker.spec.beat.value
                if silent > self.worker_timeout and not worker.stopping:
                    worker.kill(f"its event loop has not run for {silent:.0f} s (WORKER_TIMEOUT)")
                    log.error("worker %d timed out; killing it", worker.pid)
            elif now - worker.started > boot_limit:
                worker.kill(f"not serving {boot_limit:.0f} s after its start")
                log.error("worker %d did not start in time; killing it", worker.pid)
            if self.stopping and now > self.stop_deadline and not worker.killed_because:
                worker.kill("its drain did not end in time")

    # -- reload -------------------------------------------------------------------------

    def _reload(self) -> None:
        if self.stopping or self.reloading is not None:
            log.info("SIGHUP ignored: a reload or stop is already under way")
            return
        config = self.config
        if self.reload_config is not None:
            try:
                config = self.reload_config()
            except (Exception, SystemExit) as error:
                log.error("SIGHUP: the configuration does not load (%s); nothing changed", error)
                return
            if (config.bind, config.insecure_bind) != (self.config.bind, self.config.insecure_bind):
                log.warning("SIGHUP: new addresses need a restart; keeping %s", self.config.bind)
                config.bind, config.insecure_bind = self.config.bind, self.config.insecure_bind
        self.config = config
        self.reloading = self.generation + 1
        # New code for the new workers: a new interpreter each, not the preloaded process.
        self.forkserver_stale = self.preload
        log.info("SIGHUP: starting %d new worker(s)", config.workers)
        for slot in range(config.workers):
            self._spawn(slot, self.reloading, config)

    def _advance_reload(self) -> None:
        if self.reloading is None:
            return
        fresh = [w for w in self.workers if w.generation == self.reloading]
        if len(fresh) < self.config.workers or not all(w.serving for w in fresh):
            return
        old = [w for w in self.workers if w.generation != self.reloading]
        log.info("reload: new workers serve; draining %d old worker(s)", len(old))
        self.generation, self.reloading = self.reloading, None
        for worker in old:
            worker.stop()

    def _abort_reload(self, reason: str) -> None:
        log.error("reload failed: %s; the old workers keep serving", reason)
        for worker in self.workers:
            if worker.generation == self.reloading:
                worker.stop()
        self.reloading = None


def _pidfd(process: SpawnProcess | ForkServerProcess) -> int | None:
    """A pidfd of the started ``process`` (None where the platform has none)."""
    open_pidfd = getattr(os, "pidfd_open", None)
    if open_pidfd is None or not process.pid:
        return None
    try:
        return int(open_pidfd(process.pid))
    except OSError:  # already gone (its sentinel says so), or no pidfd here
        return None


# -- command line -------------------------------------------------------------------------


def check_tls(config: Config) -> str | None:
    """What is wrong with the TLS settings, in one line, or None (checked once, here)."""
    if (config.certfile is None) != (config.keyfile is None):
        return "--certfile and --keyfile (CERTFILE, KEYFILE) must be given together"
    if not config.ssl_enabled:
        return None
    try:
        config.create_ssl_context()
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        return f"certfile {config.certfile}, keyfile {config.keyfile}: {error}"
    return None


def parse_config(argv: list[str] | None) -> Config:
    """The Config ``hypercorn`` builds from this command line (file re-read each call)."""
    captured: list[Config] = []

    def capture(config: Config) -> int:
        captured.append(config)
        return 0

    original = hypercorn_cli.run  # type: ignore[attr-defined]
    hypercorn_cli.run = capture  # type: ignore[attr-defined]
    try:
        hypercorn_cli.main(argv)
    finally:
        hypercorn_cli.run = original  # type: ignore[attr-defined]
    return captured[0]


def _check_settings() -> dict[str, Any] | None:
    """The app's settings, checked once here so that a bad one is said once and no worker
    starts; None after one ``Error:`` line per problem (as quart_app/startup/boot.py words them)."""
    from ..startup.preflight import preflight, stale_metrics
    from ..startup.settings import SettingsError

    try:
        settings = preflight()
    except SettingsError as error:
        for line in error.problems:
            print(f"Error: {line}", file=sys.stderr)
        return None
    stale = stale_metrics()
    if stale is not None:
        print(f"Error: {stale}", file=sys.stderr)
        return None
    return settings


def command_line_problem(argv: list[str]) -> str | None:
    """A worker count or port that is not a number, in one line (argparse would print its
    usage, and a port a traceback); None when both read.
    """
    for index, arg in enumerate(argv):
        name, has_value, value = arg.partition("=")
        if not has_value:
            value = argv[index + 1] if index + 1 < len(argv) else ""
        if name in {"-w", "--workers"}:
            if not value.isdigit() or int(value) < 1:
                return f"--workers (WORKERS) must be a whole number of at least 1, not {value!r}"
        elif name in {"-b", "--bind", "--insecure-bind"}:
            if value.startswith(("unix:", "fd://")):
                continue
            _host, _colon, port = value.rpartition(":")
            if _colon and not (port.isdigit() and int(port) <= 65535):
                return (
                    f"{name} {value} (HOST, PORT): the port must be a number from 0 to"
                    f" 65535, not {port!r}"
                )
    return None


def main(argv: list[str] | None = None) -> int:
    problem = command_line_problem(sys.argv[1:] if argv is None else argv)
    if problem is not None:
        print(f"Error: {problem}", file=sys.stderr)
        return BOOT_ERROR_EXIT
    config = parse_config(argv)
    if config.use_reloader or any(b.startswith(("unix:", "fd://")) for b in config.bind):
        from hypercorn.run import run as hypercorn_run

        return int(hypercorn_run(config))
    settings = _check_settings()
    if settings is None:
        return BOOT_ERROR_EXIT
    # The app's log format (LOG_FORMAT text or json) for the supervisor's lines too: one
    # format in the stream. "none" leaves the app's logging to a host; here the
    # supervisor is the host, so it writes text.
    from ..observability.logs import configure_logging

    log_format = str(settings.get("LOG_FORMAT") or "text").strip().lower()
    configure_logging(
        "text" if log_format == "none" else log_format, str(settings.get("LOG_LEVEL", "INFO"))
    )
    supervisor = Supervisor(
        config,
        worker_timeout=float(settings.get("WORKER_TIMEOUT", 30.0)),
        drain_queue=bool(settings.get("DRAIN_ACCEPT_QUEUE", True)),
        reload_config=lambda: parse_config(argv),
        preload=bool(settings.get("WORKER_PRELOAD", True)),
        steering=bool(settings.get("REUSEPORT_STEERING", True)),
    )
    return supervisor.run()
