"""Start, probe and stop the servers under test, each on a free loopback port.

Every server runs in its own process group with a fresh temporary instance directory and
database, and is stopped (SIGTERM, then SIGKILL) by `Server.stop` -- the runner calls it in
``finally`` -- so nothing outlives a run. A server of the PostgreSQL + Redis profile gets
its own database (``bench_<id>``, migrated at start, dropped at stop) and its own Redis key
prefix (``bench:<id>:``, every key under it deleted at stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

#: Settings that raise quart_app's throttles for the run: every simulated client shares
#: one loopback address, which the per-address limit would otherwise throttle at once.
QUART_BENCH_ENV = {
    "RATELIMIT_AUTH_LIMIT": "1000000",
    "RATELIMIT_AUTH_PERIOD": "60",
    "JWT_ACCESS_TOKEN_EXPIRES": "3600",
    # The socket benchmarks open thousands of WebSockets from a few loopback addresses.
    "WS_MAX_SOCKETS_PER_ADDRESS": "0",
    "WS_MAX_PENDING_SOCKETS": "0",
}
#: Where the PostgreSQL + Redis profile makes its databases: an async URL of a database we
#: may connect to in order to create ours (env BENCH_POSTGRES_URL), and Redis (BENCH_REDIS_URL).
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: TargetSpec.stores values: SQLite file + in-process revocations and throttles, or
#: PostgreSQL + Redis (what several hosts share).
LOCAL_STORES = "sqlite"
SHARED_STORES = "postgres+redis"
FLASK_APP = "benchmarks.baseline.app:create_app()"
QUART_NOOP_APP = "benchmarks.peers.quart_noop:create_app()"


def has_fast_path_setting() -> bool:
    """Whether quart_app has a ``FAST_PATH`` setting (its ASGI shortcut for claims routes)."""
    try:
        from quart_app.startup.settings import DEFAULTS
    except ImportError:
        return False
    return "FAST_PATH" in DEFAULTS


def has_serve_launcher() -> bool:
    """Whether quart_app ships its SO_REUSEPORT launcher (``python -m quart_app.serving``)."""
    return (REPO / "quart_app" / "serving" / "__main__.py").exists()


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
    stores: str = LOCAL_STORES  # SHARED_STORES: a PostgreSQL database and Redis of its own
    optional: bool = False  # skipped, not failed, when its program is not installed


def target_specs() -> dict[str, TargetSpec]:
    """Every server the scenarios may use, by key."""
    hypercorn = str(BIN / "hypercorn")
    uvicorn = str(BIN / "uvicorn")
    gunicorn = str(BIN / "gunicorn")
    bind = "127.0.0.1:{port}"
    # Every server gets 2 workers, whatever the host's cores (hypercorn.toml sets none).
    hypercorn_conf = ("--config", "hypercorn.toml", "--workers", "2", "--bind", bind)
    hypercorn_args = (*hypercorn_conf, "quart_app.asgi:app")
    uvicorn_args: tuple[str, ...] = ("--host", "127.0.0.1", "--port", "{port}", "--workers", "2")
    uvicorn_args += ("--no-access-log", "--log-level", "warning", "--backlog", "2048")
    # granian: same worker count, loop (uvloop, which "auto" would pick too) and backlog as
    # hypercorn; its access log is off by default, said explicitly all the same.
    granian_args = (
        *("--interface", "asgi", "--workers", "2", "--loop", "uvloop"),
        *("--no-access-log", "--log-level", "warning", "--backlog", "2048"),
        *("--host", "127.0.0.1", "--port", "{port}"),
    )
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
            "quart-hypercorn-pg",
            "quart_app, hypercorn.toml, PostgreSQL + Redis",
            "quart",
            (hypercorn, *hypercorn_args),
            dict(QUART_BENCH_ENV),
            stores=SHARED_STORES,
        ),
        TargetSpec(
            "quart-serve",
            "quart_app, python -m quart_app.serving (SO_REUSEPORT socket per worker)",
            "quart",
            (sys.executable, "-m", "quart_app.serving", *hypercorn_args),
            dict(QUART_BENCH_ENV),
        ),
        TargetSpec(
            "quart-serve-h11",
            "quart_app, python -m quart_app.serving, HTTP1_PARSER=h11 (Hypercorn's own parser)",
            "quart",
            (sys.executable, "-m", "quart_app.serving", *hypercorn_args),
            {**QUART_BENCH_ENV, "HTTP1_PARSER": "h11"},
        ),
        TargetSpec(
            "quart-noop-hypercorn",
            "quart_app + /noop, hypercorn.toml",
            "quart",
            (hypercorn, *hypercorn_conf, QUART_NOOP_APP),
            dict(QUART_BENCH_ENV),
        ),
        TargetSpec(
            "quart-noop-nofast-hypercorn",
            "quart_app + /noop, FAST_PATH=false, hypercorn.toml",
            "quart",
            (hypercorn, *hypercorn_conf, QUART_NOOP_APP),
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
            "quart-granian",
            "quart_app, granian 2 workers (ASGI, uvloop)",
            "quart",
            (str(BIN / "granian"), *granian_args, "quart_app.asgi:app"),
            dict(QUART_BENCH_ENV),
            optional=True,
        ),
        TargetSpec(
            "fastapi-uvicorn",
            "FastAPI + PyJWT, uvicorn 2 workers",
            "fastapi",
            (uvicorn, *uvicorn_args, "--factory", "benchmarks.peers.fastapi_app:create_app"),
        ),
    ]
    return {spec.key: spec for spec in specs}


def postgres_admin_url() -> str:
    return os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)


def shown(url: str) -> str:
    """`url` with any password masked, for the report."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _asyncpg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_execute(url: str, *statements: str) -> Any:
    """Run `statements` on one connection to `url`; the last one's first value."""
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        value = None
        for sql in statements:
            value = await conn.fetchval(sql)
        return value
    finally:
        await conn.close()


def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)


def check_shared_stores() -> tuple[str | None, str]:
    """Whether PostgreSQL and Redis answer: (why not, or None; their versions).

    Probed once before the PostgreSQL + Redis profile starts, so a machine without them
    skips that profile instead of failing the run.
    """
    pg_url, r_url = postgres_admin_url(), redis_url()
    try:
        pg_version = asyncio.run(_pg_execute(pg_url, "SHOW server_version"))
    except Exception as exc:
        return f"PostgreSQL at {shown(pg_url)} unreachable: {type(exc).__name__}: {exc}", ""
    try:
        client = _redis_client(r_url)
        try:
            redis_version = client.info("server").get("redis_version", "?")
        finally:
            client.close()
    except Exception as exc:
        return f"Redis at {shown(r_url)} unreachable: {type(exc).__name__}: {exc}", ""
    return None, f"PostgreSQL {pg_version}, Redis {redis_version}"


@dataclass
class SharedStores:
    """One server's own PostgreSQL database and Redis key prefix, for as long as it runs."""

    admin_url: str
    redis_url: str
    ident: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created: bool = False

    @property
    def database(self) -> str:
        return f"bench_{self.ident}"

    @property
    def prefix(self) -> str:
        return f"bench:{self.ident}:"

    @property
    def url(self) -> str:
        """The async URL of our database (DATABASE_URL)."""
        from sqlalchemy.engine import make_url

        url = make_url(self.admin_url).set(database=self.database)
        return url.render_as_string(hide_password=False)

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.url, "REDIS_URL": self.redis_url, "REDIS_PREFIX": self.prefix}

    def create(self) -> None:
        """CREATE DATABASE, then migrate it to head as an operator would (quart-app db upgrade)."""
        from quart_app.store import migrate

        asyncio.run(_pg_execute(self.admin_url, f'CREATE DATABASE "{self.database}"'))
        self.created = True
        migrate.upgrade(self.url)

    def drop(self) -> None:
        """Drop the database (its server is stopped first) and delete our Redis keys.

        Both are attempted; the first error is raised after.
        """
        errors: list[Exception] = []
        if self.created:
            try:
                # FORCE (PostgreSQL 13+): connections a killed worker left behind are ended.
                drop = f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'
                asyncio.run(_pg_execute(self.admin_url, drop))
                self.created = False
            except Exception as exc:
                errors.append(exc)
        try:
            client = _redis_client(self.redis_url)
            try:
                keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start : start + 1000])
            finally:
                client.close()
        except Exception as exc:
            errors.append(exc)
        if errors:
            raise errors[0]


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
        self.stores: SharedStores | None = None
        self.cleanup_error: str | None = None  # what Server.stop could not remove

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until GET /healthz answers 200.

        For the PostgreSQL + Redis profile, first create and migrate its database.
        """
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
        if self.spec.stores == SHARED_STORES:
            self.stores = SharedStores(postgres_admin_url(), redis_url())
            self.stores.create()
            env.update(self.stores.env())
        argv = [arg.replace("{port}", str(self.port)) for arg in self.spec.argv]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group (stop() signals the whole group) but the runner's
                # session: with a session of its own, Linux's autogroup scheduling would
                # split the cores between the server and the load generator as two groups
                # before looking at threads, so a server's nice 19 hashing threads count
                # against its event loops, and every server waits out the load generator's
                # slices (measured: /protected p99 at 64 connections 17-66 ms in a separate
                # session, 12-16 ms in the same one; login-storm ratio 1.7-2.7x vs 1.0x).
                process_group=0,
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
        """SIGTERM the process group, SIGKILL what is left after 10 s; then drop its
        database and Redis keys, if it has them (an error there lands in `cleanup_error`).
        """
        self._stop_process()
        if self.stores is not None:
            stores, self.stores = self.stores, None
            try:
                stores.drop()
            except Exception as exc:
                self.cleanup_error = (
                    f"{self.spec.key}: could not remove database {stores.database} or Redis"
                    f" keys {stores.prefix}*: {type(exc).__name__}: {exc}"
                )

    def _stop_process(self) -> None:
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
