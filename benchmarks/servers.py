"""Start, probe and stop the servers under test, each on a free loopback port.

Every server runs in its own process group with a fresh temporary instance directory and
database, and is stopped (SIGTERM, then SIGKILL) by `Server.stop` -- the runner calls it in
``finally`` -- so nothing outlives a run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

#: Settings that raise quart_app's throttles for the run: every simulated client shares
#: one loopback address, which the per-address limit would otherwise throttle at once.
QUART_BENCH_ENV = {
    "RATELIMIT_AUTH_LIMIT": "1000000",
    "RATELIMIT_AUTH_PERIOD": "60",
    "JWT_ACCESS_TOKEN_EXPIRES": "3600",
}
FLASK_APP = "benchmarks.baseline.app:create_app()"
QUART_NOOP_APP = "benchmarks.peers.quart_noop:create_app()"


def has_fast_path_setting() -> bool:
    """Whether quart_app has a ``FAST_PATH`` setting (its ASGI shortcut for claims routes)."""
    try:
        from quart_app.settings import DEFAULTS
    except ImportError:
        return False
    return "FAST_PATH" in DEFAULTS


def has_serve_launcher() -> bool:
    """Whether quart_app ships its SO_REUSEPORT launcher (``python -m quart_app.serve``)."""
    return (REPO / "quart_app" / "serve.py").exists()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TargetSpec:
    """How to start one server under test."""

    key: str  # short id used in the report, e.g. "quart-hypercorn"
    label: str  # human name: app and server
    kind: str  # "quart", "flask" or "fastapi": which routes and tokens it has
    argv: tuple[str, ...]  # command; "{port}" is replaced by the chosen port
    env: dict[str, str] = field(default_factory=dict)


def target_specs() -> dict[str, TargetSpec]:
    """Every server the scenarios may use, by key."""
    hypercorn = str(BIN / "hypercorn")
    uvicorn = str(BIN / "uvicorn")
    gunicorn = str(BIN / "gunicorn")
    bind = "127.0.0.1:{port}"
    hypercorn_args = ("--config", "hypercorn.toml", "--bind", bind, "quart_app.asgi:app")
    uvicorn_args = ("--host", "127.0.0.1", "--port", "{port}", "--workers", "2")
    uvicorn_args += ("--no-access-log", "--log-level", "warning", "--backlog", "2048")
    specs = [
        TargetSpec(
            "flask-gunicorn",
            "Flask + FJE, gunicorn 2 sync workers",
            "flask",
            (gunicorn, "-c", "benchmarks/baseline/gunicorn_conf.py", "-b", bind, FLASK_APP),
        ),
        TargetSpec(
            "quart-hypercorn",
            "quart_app, hypercorn.toml",
            "quart",
            (hypercorn, *hypercorn_args),
            dict(QUART_BENCH_ENV),
        ),
        TargetSpec(
            "quart-serve",
            "quart_app, python -m quart_app.serve (SO_REUSEPORT socket per worker)",
            "quart",
            (sys.executable, "-m", "quart_app.serve", *hypercorn_args),
            dict(QUART_BENCH_ENV),
        ),
        TargetSpec(
            "quart-noop-hypercorn",
            "quart_app + /noop, hypercorn.toml",
            "quart",
            (hypercorn, "--config", "hypercorn.toml", "--bind", bind, QUART_NOOP_APP),
            dict(QUART_BENCH_ENV),
        ),
        TargetSpec(
            "quart-noop-nofast-hypercorn",
            "quart_app + /noop, FAST_PATH=false, hypercorn.toml",
            "quart",
            (hypercorn, "--config", "hypercorn.toml", "--bind", bind, QUART_NOOP_APP),
            {**QUART_BENCH_ENV, "FAST_PATH": "false"},
        ),
        TargetSpec(
            "quart-uvicorn",
            "quart_app, uvicorn 2 workers",
            "quart",
            (uvicorn, *uvicorn_args, "quart_app.asgi:app"),
            dict(QUART_BENCH_ENV),
        ),
        TargetSpec(
            "fastapi-uvicorn",
            "FastAPI + PyJWT, uvicorn 2 workers",
            "fastapi",
            (uvicorn, *uvicorn_args, "--factory", "benchmarks.peers.fastapi_app:create_app"),
        ),
    ]
    return {spec.key: spec for spec in specs}


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET `url`; (status, body), with status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (OSError, TimeoutError):
        return 0, b""


class Server:
    """One running server under test."""

    def __init__(self, spec: TargetSpec, workdir: Path, secret: str) -> None:
        self.spec = spec
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.instance = workdir / spec.key
        self.instance.mkdir(parents=True, exist_ok=True)
        self.log_path = self.instance / "server.log"
        self.secret = secret
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until GET /healthz answers 200."""
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                "JWT_SECRET_KEY": self.secret,
                "INSTANCE_PATH": str(self.instance),
                "DATABASE_URL": f"sqlite+aiosqlite:///{self.instance / 'app.db'}",
                "BASELINE_DATABASE_URL": f"sqlite:///{self.instance / 'baseline.db'}",
                "JWT_ACCESS_TOKEN_EXPIRES": "3600",
            }
        )
        env.update(self.spec.env)
        argv = [arg.replace("{port}", str(self.port)) for arg in self.spec.argv]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.key} exited at start-up:\n{self.log_tail()}")
            status, _ = http_get(self.base_url + "/healthz", timeout=1.0)
            if status == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.spec.key} did not answer /healthz in {timeout:.0f}s")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pids(self) -> tuple[int | None, list[int]]:
        """The master's pid and its worker processes' (the master alone if it has none)."""
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return None, []
        try:
            master = psutil.Process(self.proc.pid)
            children = master.children(recursive=True)
        except psutil.Error:
            return self.proc.pid, []
        # Multiprocessing may add a resource-tracker helper beside the workers: skip it.
        workers = [
            child.pid for child in children if "resource_tracker" not in " ".join(_cmdline(child))
        ]
        return self.proc.pid, workers or [self.proc.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server's processes (master and workers).

        CPU per request stays meaningful when other jobs compete for the cores, which
        requests per second do not.
        """
        import psutil

        if self.proc is None:
            return 0.0
        total = 0.0
        try:
            master = psutil.Process(self.proc.pid)
            procs = [master, *master.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL what is left after 10 s."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _cmdline(proc: object) -> list[str]:
    import psutil

    try:
        return list(proc.cmdline())  # type: ignore[attr-defined]
    except psutil.Error:
        return []


def rss_mib(pids: list[int]) -> dict[int, float]:
    """Resident set size of each pid in MiB (pids that vanished are left out)."""
    import psutil

    sizes: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            sizes[pid] = psutil.Process(pid).memory_info().rss / 2**20
    return sizes
