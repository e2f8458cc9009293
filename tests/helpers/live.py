"""Start real Hypercorn processes on loopback for live tests (bounded, always stopped)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.helpers.support import FAST_HASHING

ROOT = Path(__file__).resolve().parents[2]
HYPERCORN = [sys.executable, "-m", "hypercorn"]


def server_env(config: Mapping[str, object]) -> dict[str, str]:
    """A test's app settings (e.g. the ``backend_config`` fixture) as a server's environment."""
    env = {key: str(value) for key, value in config.items() if value is not None}
    if "DATABASE_URL" in env and not env["DATABASE_URL"].startswith("sqlite"):
        env["DATABASE_CREATE_TABLES"] = "false"  # migrated by the fixture
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One Hypercorn master (with its workers) serving quart_app.asgi:app."""

    def __init__(
        self,
        instance: Path,
        *,
        workers: int = 1,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        access_log: Path | None = None,
        launcher: list[str] | None = None,
        healthz: int | None = 200,
        target: str = "quart_app.asgi:app",
        tls: tuple[Path, Path] | None = None,
        own_group: bool = False,
    ) -> None:
        self.port = port or free_port()
        #: In a process group of its own, as under systemd or a shell: a signal can then
        #: reach the master, its preloaded process and its workers at once.
        self.own_group = own_group
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.access_log = access_log
        self.log_path = instance.parent / f"hypercorn-{self.port}.log"
        self.env = {
            **os.environ,
            "INSTANCE_PATH": str(instance),
            **{key: str(value) for key, value in FAST_HASHING.items()},
            **(env or {}),
        }
        if "JWT_SECRET_KEY" not in (env or {}):
            # Exercise the generated, persisted secret unless a test sets one.
            self.env.pop("JWT_SECRET_KEY", None)
        self.args = [
            *(launcher or HYPERCORN),
            "--config",
            str(ROOT / "hypercorn.toml"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--graceful-timeout",
            "2",
        ]
        if tls is not None:
            self.args += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
        if access_log is not None:
            self.args += ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s"]
        self.args.append(target)  # another ASGI app's "module:attribute", if not quart_app
        #: The /healthz status that means "started" (503: serving without its database;
        #: None: any answer).
        self.healthz = healthz
        self.process: subprocess.Popen[bytes] | None = None

    #: How long a start may take: generous, since on a busy machine (tests side by side,
    #: other runs) importing the app in the master and each worker takes a while.
    START_TIMEOUT = 180.0

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.launch()
        self.wait_serving(time.monotonic() + timeout)

    def launch(self) -> None:
        """Start the master; :meth:`wait_serving` waits for its answer."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0 if self.own_group else None,
        )

    def wait_serving(self, deadline: float) -> None:
        """Until /healthz answers as :attr:`healthz` says; stopped and an error at
        ``deadline`` (``time.monotonic()``) or if the master exits."""
        assert self.process is not None, "launch() first"
        verify = ssl.create_default_context(cafile=self.tls[0]) if self.tls else True
        # One client for every probe: a client per probe builds its TLS context anew, a
        # third of a CPU-second for each second of waiting.
        with httpx.Client(timeout=3, verify=verify) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"hypercorn exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    status = client.get(f"{self.url}/healthz").status_code
                    if self.healthz in (None, status):
                        return
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"hypercorn did not answer in time: {self.log_path.read_text()}")

    def terminate(self) -> None:
        """Ask the master to stop; :meth:`stop` waits for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if hasattr(self, "_log"):
            self._log.close()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(instance: Path, **kwargs: object) -> Iterator[Server]:
    server = Server(instance, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_together(*servers: Server) -> Iterator[tuple[Server, ...]]:
    """Several servers (hosts of one deployment) started at once, not one after another:
    on two cores one start mostly waits on imports the other core can run meanwhile.
    All are stopped at the end, whatever happens, and at once too."""
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.launch()

        def terminate_all() -> None:  # first of the callbacks: then each stop() only waits
            for server in servers:
                server.terminate()

        stack.callback(terminate_all)
        deadline = time.monotonic() + Server.START_TIMEOUT
        for server in servers:
            server.wait_serving(deadline)
        yield servers
