"""A soak: does memory stop growing under steady traffic? (a filling cache levels off, a
leak does not).

``python -m benchmarks.studies._soak --minutes 40 --rate 150`` starts ``python -m
quart_app.serving`` with hypercorn.toml and 2 workers (SQLite and in-process stores by
default; ``--stores postgres+redis`` for PostgreSQL + Redis), then sends a fixed rate of
requests (open loop: the rate does not bend to the server) of a realistic mix:

* GET /protected with many distinct access tokens (every login and refresh adds one;
  tokens of ended sessions and expired ones are also sent and must answer 401), /me,
  /users pages, /healthz;
* POST /login (right, wrong and unknown usernames), /token/refresh, /logout, and a new
  /register now and then;
* malformed tokens and unknown paths, each one different;
* a short WebSocket session every few seconds (handshake with a token, a few echoes).

Connections come from many loopback addresses (127.0.0.2-127.0.0.251, so the
per-address throttles stay at their defaults and their tables fill as they would) and
are closed after a random number of requests. Access tokens live 10 minutes, so what is
kept until a token expires turns over several times in a 40-minute run.

Every 30 s it samples the RSS of the master, the preloaded process and each worker; at
5 minutes, half-way and at the end it asks each process (through
benchmarks/studies/_soak_probe.py, loaded only into this server) for its live objects by
type and the sizes of the app's tables. It prints a Markdown report: RSS at the
milestones, the slope over the second half, the requests and their failures, what grew
in each worker, and the load generator's own CPU use. ``--json FILE`` keeps every sample.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import contextvars
import json
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.servers import LOCAL_STORES, REPO, SHARED_STORES, Server, TargetSpec

#: What the server's processes import first (PYTHONPATH): it starts the probe.
SITECUSTOMIZE = "from benchmarks.studies._soak_probe import install\n\ninstall()\n"
#: Access-token lifetime on the server under test (seconds).
ACCESS_TTL = 600
#: Client source addresses: 127.0.0.2 .. 127.0.0.(1 + SOURCES).
SOURCES = 250
#: Most connections open at once; an arrival with none free is counted as "late".
MAX_CONNECTIONS = 96
#: A connection idle this long is not reused (the server closes idle ones after 5 s).
IDLE_REUSE_S = 3.0
#: The ``msg`` of the last answer in this task (a failure is counted with it).
_last_msg: contextvars.ContextVar[str] = contextvars.ContextVar("last_msg", default="")
#: Seconds after a logout before its tokens are sent (expecting 401).
ENDED_AFTER_S = 10.0
#: Users registered before the clock starts.
INITIAL_USERS = 40
#: Sampling period of RSS (seconds).
SAMPLE_S = 30.0
#: Seconds between WebSocket sessions.
WS_EVERY_S = 4.0
#: Weights of the HTTP operations (per arrival).
MIX: dict[str, int] = {
    "protected": 700,
    "protected_ended": 15,
    "me": 60,
    "users": 30,
    "healthz": 10,
    # Password checks (login, register) are kept near one a second in all: each costs
    # an argon2 hash, and more would queue on a shared 2-core machine.
    "login": 5,
    "login_wrong": 1,
    "login_unknown": 1,
    "register": 1,
    "refresh": 40,
    "logout": 4,
    "bad_token": 40,
    "not_found": 20,
}
EXPECT: dict[str, tuple[int, ...]] = {
    "protected": (200,),
    "protected_ended": (401,),
    "me": (200,),
    "users": (200,),
    "healthz": (200,),
    "login": (200,),
    "login_wrong": (401,),
    "login_unknown": (401,),
    "refresh": (200,),
    "logout": (200,),
    "register": (201,),
    "bad_token": (401, 422),
    "not_found": (404,),
}


def milestones(minutes: float) -> list[float]:
    """The report's columns (minutes): 0, 5, 10, 20, 30, ... up to the run's length."""
    marks = [0.0, 5.0, 10.0] + [float(m) for m in range(20, int(minutes) + 1, 10)]
    marks = [m for m in marks if m <= minutes]
    if not marks or marks[-1] < minutes:
        marks.append(minutes)
    return marks


def slope_per_10min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MiB) points, in MiB per 10 minutes."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 10.0


# --- HTTP/1.1 client --------------------------------------------------------------------


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.left = random.randint(20, 400)  # requests before this client closes it
        self.last_used = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Pool:
    """Keep-alive connections from many loopback addresses, at most MAX_CONNECTIONS."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[_Conn] = []
        self.open = 0
        self.opened = 0

    async def acquire(self) -> _Conn | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if now - conn.last_used < IDLE_REUSE_S:
                return conn
            self._drop(conn)
        if self.open >= MAX_CONNECTIONS:
            return None
        self.open += 1
        source = f"127.0.0.{random.randint(2, 1 + SOURCES)}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0)), 10
            )
        except BaseException:
            self.open -= 1
            raise
        self.opened += 1
        return _Conn(reader, writer)

    def release(self, conn: _Conn, reusable: bool) -> None:
        conn.left -= 1
        if reusable and conn.left > 0:
            conn.last_used = time.monotonic()
            self.idle.append(conn)
        else:
            self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        self.open -= 1
        conn.close()

    def close(self) -> None:
        while self.idle:
            self._drop(self.idle.pop())


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(part[:-2] for part in parts)
    else:
        body = b""
    return status, body, headers.get("connection", "").lower() != "close"


# --- the traffic ------------------------------------------------------------------------


@dataclass
class User:
    name: str
    password: str
    access: str | None = None
    refresh: str | None = None
    busy: bool = False
    session: int = 0  # this client's number for the user's current login


@dataclass
class Token:
    value: str
    user: User
    born: float  # monotonic
    session: int  # the login it belongs to (User.session when issued)


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "op status" of failures
    errors: Counter[str] = field(default_factory=Counter)  # exception names
    late: int = 0
    ws_sessions: int = 0
    ws_failed: int = 0
    ws_errors: Counter[str] = field(default_factory=Counter)


class Traffic:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.pool = Pool(server.port)
        self.users: list[User] = []
        self.tokens: list[Token] = []  # live, usable access tokens
        self.ended: list[tuple[Token, float]] = []  # tokens of ended sessions, when ended
        self.ended_sessions: set[int] = set()
        self.sessions = 0
        self.tally = Tally()
        self.in_flight = 0

    async def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON body or None); status 0 on a connection error."""
        conn = await self.pool.acquire()
        if conn is None:
            self.tally.late += 1
            return -1, None
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.server.port}"]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        if body is not None:
            lines.append("Content-Type: application/json")
        if body is not None or method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(payload)}")
        try:
            conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            status, raw, keep = await asyncio.wait_for(_read_response(conn.reader), 30)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as e:
            self.pool.release(conn, False)
            self.tally.errors[type(e).__name__] += 1
            return 0, None
        self.pool.release(conn, keep)
        parsed = None
        if raw[:1] in (b"{", b"["):
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        msg = parsed.get("msg") if isinstance(parsed, dict) else None
        _last_msg.set(msg if isinstance(msg, str) else "")
        return status, parsed

    # -- state helpers --

    def _idle_user(self) -> User | None:
        for _ in range(8):
            user = random.choice(self.users)
            if not user.busy:
                return user
        return None

    def _store(self, user: User, pair: Any) -> None:
        if isinstance(pair, dict) and "access_token" in pair:
            user.access, user.refresh = pair["access_token"], pair["refresh_token"]
            self.tokens.append(Token(user.access, user, time.monotonic(), user.session))
            if len(self.tokens) > 5000:
                self.tokens[: len(self.tokens) - 5000] = []

    def _live_token(self) -> Token | None:
        cutoff = time.monotonic() - (ACCESS_TTL - 30)
        while self.tokens:
            index = random.randrange(len(self.tokens))
            token = self.tokens[index]
            if token.born >= cutoff and token.session not in self.ended_sessions:
                return token
            self.tokens[index] = self.tokens[-1]
            self.tokens.pop()
        return None

    # -- operations: each returns its status (-1: not sent, None: nothing to do) --

    async def op_protected(self) -> int | None:
        token = self._live_token()
        if token is None:
            return None
        return (await self.request("GET", "/protected", token.value))[0]

    async def op_protected_ended(self) -> int | None:
        # A logout reaches the other worker within REVOCATION_SYNC_INTERVAL (1 s): a
        # token is sent here from 10 s after its session ended.
        settled = [t for t, at in self.ended[-200:] if time.monotonic() - at >= ENDED_AFTER_S]
        if not settled:
            return None
        token = random.choice(settled)
        return (await self.request("GET", "/protected", token.value))[0]

    async def op_me(self) -> int | None:
        token = self._live_token()
        if token is None:
            return None
        return (await self.request("GET", "/me", token.value))[0]

    async def op_users(self) -> int | None:
        token = self._live_token()
        if token is None:
            return None
        limit = random.choice((10, 50))
        return (await self.request("GET", f"/users?limit={limit}", token.value))[0]

    async def op_healthz(self) -> int | None:
        return (await self.request("GET", "/healthz"))[0]

    async def _login(self, user: User) -> int:
        creds = {"username": user.name, "password": user.password}
        status, body = await self.request("POST", "/login", body=creds)
        if status == 200:
            self.sessions += 1
            user.session = self.sessions
            self._store(user, body)
        return status

    async def op_login(self) -> int | None:
        user = self._idle_user()
        if user is None:
            return None
        user.busy = True
        try:
            return await self._login(user)
        finally:
            user.busy = False

    async def op_login_wrong(self) -> int | None:
        user = random.choice(self.users)
        creds = {"username": user.name, "password": secrets.token_urlsafe(12)}
        return (await self.request("POST", "/login", body=creds))[0]

    async def op_login_unknown(self) -> int | None:
        creds = {"username": f"nobody_{secrets.token_hex(8)}", "password": "wrong-password-1"}
        return (await self.request("POST", "/login", body=creds))[0]

    async def op_refresh(self) -> int | None:
        user = self._idle_user()
        if user is None or user.refresh is None:
            return None
        user.busy = True
        try:
            status, body = await self.request("POST", "/token/refresh", user.refresh)
            if status == 200:  # same session: tokens issued before stay valid
                self._store(user, body)
            return status
        finally:
            user.busy = False

    async def op_logout(self) -> int | None:
        user = self._idle_user()
        if user is None or user.access is None or user.refresh is None:
            return None
        user.busy = True
        try:
            status, _ = await self.request("POST", "/logout", user.access)
            if status == 200:
                session = user.session
                self.ended_sessions.add(session)
                ended = [t for t in self.tokens if t.session == session]
                now = time.monotonic()
                self.ended.extend((t, now) for t in ended if now - t.born < ACCESS_TTL - 60)
                self.ended = self.ended[-500:]
                user.access = user.refresh = None
            return status
        finally:
            user.busy = False

    async def op_register(self) -> int | None:
        user = User(f"soak_{secrets.token_hex(6)}", secrets.token_urlsafe(15))
        creds = {"username": user.name, "password": user.password}
        status, _ = await self.request("POST", "/register", body=creds)
        if status == 201:
            self.users.append(user)
        return status

    async def op_bad_token(self) -> int | None:
        kind = random.random()
        if kind < 0.4:  # a well-formed JWT with a wrong signature
            token = self._live_token()
            if token is None:
                return None
            head, claims, _ = token.value.split(".")
            sig = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
            value = f"{head}.{claims}.{sig}"
        elif kind < 0.7:  # three base64 parts that are not JSON
            value = ".".join(secrets.token_urlsafe(20) for _ in range(3))
        else:  # not a JWT at all
            value = secrets.token_hex(24)
        return (await self.request("GET", "/protected", value))[0]

    async def op_not_found(self) -> int | None:
        return (await self.request("GET", f"/no/such/{secrets.token_hex(6)}"))[0]

    async def run_op(self, name: str) -> None:
        self.in_flight += 1
        try:
            status = await getattr(self, f"op_{name}")()
        except Exception as exc:  # a bug of this client: counted, never fatal
            self.tally.errors[f"{name}: {type(exc).__name__}: {exc}"[:120]] += 1
            status = 0
        finally:
            self.in_flight -= 1
        if status is None or status == -1:
            return
        self.tally.sent[name] += 1
        if status not in EXPECT[name]:
            self.tally.failed[name] += 1
            msg = _last_msg.get()
            self.tally.statuses[f"{name} {status}" + (f" {msg[:48]!r}" if msg else "")] += 1

    async def ws_session(self) -> None:
        from websockets.asyncio.client import connect

        token = self._live_token()
        if token is None:
            return
        self.tally.ws_sessions += 1
        url = f"ws://127.0.0.1:{self.server.port}/ws"
        try:
            async with asyncio.timeout(30):
                async with connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {token.value}"},
                    compression=None,
                ) as ws:
                    ready = json.loads(await ws.recv())
                    if ready.get("type") != "ready":
                        raise RuntimeError(f"no ready: {ready}")
                    for n in range(random.randint(1, 5)):
                        message = {"type": "echo", "data": f"{n}-{secrets.token_hex(8)}"}
                        await ws.send(json.dumps(message))
                        if json.loads(await ws.recv()) != message:
                            raise RuntimeError("echo mismatch")
        except Exception as exc:
            self.tally.ws_failed += 1
            self.tally.ws_errors[f"{type(exc).__name__}: {exc}"[:100]] += 1

    async def setup(self) -> None:
        for _ in range(INITIAL_USERS):
            await self.op_register()
        for user in list(self.users):
            await self._login(user)

    async def drive(self, rate: float, seconds: float, stop: asyncio.Event) -> None:
        names = list(MIX)
        weights = [MIX[name] for name in names]
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        tick = 0.1
        owed = 0.0
        next_ws = start
        while not stop.is_set():
            now = time.monotonic()
            if now - start >= seconds:
                break
            owed += rate * tick
            count, owed = int(owed), owed - int(owed)
            for name in random.choices(names, weights, k=count):
                if self.in_flight >= MAX_CONNECTIONS:
                    self.tally.late += 1
                    continue
                task = asyncio.create_task(self.run_op(name))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if now >= next_ws:
                next_ws += WS_EVERY_S
                task = asyncio.create_task(self.ws_session())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            # Sleep until the next tick of the fixed schedule (no drift).
            elapsed = time.monotonic() - start
            await asyncio.sleep(max(0.0, tick - (elapsed % tick)))
        if tasks:
            await asyncio.wait(tasks, timeout=40)
        self.pool.close()


# --- the server and its processes -------------------------------------------------------


def processes(server: Server) -> dict[str, int]:
    """{"master": pid, "preload": pid, "worker 1": pid, ...} (workers in pid order)."""
    import psutil

    assert server.proc is not None
    master = psutil.Process(server.proc.pid)
    found = {"master": master.pid}
    workers = []
    for child in master.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            line = " ".join(child.cmdline())
            if "resource_tracker" in line:
                continue
            if child.ppid() == master.pid and "forkserver" in line:
                found["preload"] = child.pid
            else:
                workers.append(child.pid)
    for n, pid in enumerate(sorted(workers), 1):
        found[f"worker {n}"] = pid
    return found


def rss(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return None


def soak_spec(stores: str, tracemalloc: bool, probe_dir: Path, extra: dict[str, str]) -> TargetSpec:
    env = {
        "JWT_ACCESS_TOKEN_EXPIRES": str(ACCESS_TTL),
        **extra,
        "PYTHONPATH": os.pathsep.join([str(probe_dir), str(REPO)]),
        "SOAK_PROBE_DIR": str(probe_dir),
    }
    if tracemalloc:
        env["SOAK_TRACEMALLOC"] = "1"
    argv = (
        sys.executable,
        *("-m", "quart_app.serving", "--config", "hypercorn.toml", "--workers", "2"),
        *("--bind", "127.0.0.1:{port}", "quart_app.asgi:app"),
    )
    (probe_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return TargetSpec("soak", "quart_app, python -m quart_app.serving", "quart", argv, env, stores)


@dataclass
class Run:
    minutes: float
    rate: float
    stores: str
    samples: list[dict[str, Any]] = field(default_factory=list)  # {t_min, rss: {name: MiB}}
    pids: dict[str, list[int]] = field(default_factory=dict)  # every pid seen per name
    dumps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    client_cpu_pct: float = 0.0
    load: list[tuple[float, float]] = field(default_factory=list)  # (t_min, loadavg 1 min)
    idle_rss: dict[str, float] = field(default_factory=dict)


def _sample(server: Server, run: Run, t_min: float) -> None:
    procs = processes(server)
    sizes = {}
    for name, pid in procs.items():
        value = rss(pid)
        if value is not None:
            sizes[name] = round(value, 2)
            seen = run.pids.setdefault(name, [])
            if pid not in seen:
                seen.append(pid)
    run.samples.append({"t_min": round(t_min, 3), "rss": sizes, "pids": procs})
    run.load.append((t_min, os.getloadavg()[0]))


async def _collect_dumps(probe_dir: Path, server: Server, run: Run, label: str) -> None:
    """Ask every process for its objects; wait (generously) for each one's file."""
    procs = processes(server)
    rss_before = {name: rss(pid) for name, pid in procs.items()}
    before = {p.name for p in probe_dir.glob("*.json")}
    (probe_dir / "dump").write_text(label)
    deadline = time.monotonic() + 60
    pending = dict(procs)
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        for name, pid in list(pending.items()):
            new = [p for p in probe_dir.glob(f"{pid}-*.json") if p.name not in before]
            if new:
                data = json.loads(max(new, key=lambda p: p.stat().st_mtime).read_text())
                data["label"] = label
                after = rss(pid)
                if after is not None and rss_before.get(name) is not None:
                    data["rss_cost_mib"] = round(after - rss_before[name], 2)  # type: ignore[operator]
                run.dumps.setdefault(name, []).append(data)
                del pending[name]


async def soak(args: argparse.Namespace) -> Run:
    run = Run(args.minutes, args.rate, args.stores)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    probe_dir = workdir / "probe"
    probe_dir.mkdir()
    extra = dict(item.split("=", 1) for item in args.env)
    spec = soak_spec(args.stores, args.tracemalloc, probe_dir, extra)
    server = Server(spec, workdir, secrets.token_hex(32))
    settings = " ".join(f"{k}={v}" for k, v in extra.items())
    print(
        f"# soak: {args.minutes:g} min at {args.rate:g}/s, stores {args.stores} {settings};"
        f" work dir {workdir}",
        flush=True,
    )
    server.start(timeout=120)
    try:
        await asyncio.sleep(5)
        run.idle_rss = {name: rss(pid) or 0.0 for name, pid in processes(server).items()}
        traffic = Traffic(server)
        await traffic.setup()
        seconds = args.minutes * 60
        stop = asyncio.Event()
        cpu0, wall0 = time.process_time(), time.monotonic()
        driver = asyncio.create_task(traffic.drive(args.rate, seconds, stop))
        dump_at = sorted({5.0, round(args.minutes / 2, 2)} - {0.0})
        next_sample = 0.0
        while not driver.done():
            t_min = (time.monotonic() - wall0) / 60
            if t_min >= next_sample:
                _sample(server, run, t_min)
                last = run.samples[-1]["rss"]
                sent = sum(traffic.tally.sent.values())
                failed = sum(traffic.tally.failed.values())
                cpu = (time.process_time() - cpu0) / max(1.0, time.monotonic() - wall0) * 100
                print(
                    f"t={t_min:5.1f} min  rss={json.dumps(last)}  sent={sent} failed={failed}"
                    f" late={traffic.tally.late} ws={traffic.tally.ws_sessions}/"
                    f"{traffic.tally.ws_failed} client_cpu={cpu:.0f}%"
                    f" load={os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                next_sample += args.sample / 60
            if dump_at and t_min >= dump_at[0] and not args.no_objects:
                await _collect_dumps(probe_dir, server, run, f"{dump_at.pop(0):g} min")
            await asyncio.wait({driver}, timeout=1.0)
        await driver
        t_min = (time.monotonic() - wall0) / 60
        run.client_cpu_pct = (
            (time.process_time() - cpu0) / max(1e-9, time.monotonic() - wall0) * 100
        )
        _sample(server, run, max(t_min, args.minutes))
        if not args.no_objects:
            await _collect_dumps(probe_dir, server, run, f"{args.minutes:g} min (end)")
        run.tally = traffic.tally
    finally:
        server.stop()
        log = server.log_path.read_text(errors="replace").splitlines()
        run.tally.errors.update(
            {
                f"server log: {line[:140]}": 1
                for line in log
                if "Traceback" in line or "ERROR" in line
            }
        )
        if server.cleanup_error:
            print(server.cleanup_error, file=sys.stderr)
    return run


# --- the report -------------------------------------------------------------------------


def _at(run: Run, name: str, minute: float) -> float | None:
    best = None
    for sample in run.samples:
        value = sample["rss"].get(name)
        if value is None:
            continue
        if best is None or abs(sample["t_min"] - minute) < abs(best[0] - minute):
            best = (sample["t_min"], value)
    return None if best is None else best[1]


def _growth(first: dict[str, Any], last: dict[str, Any]) -> list[tuple[str, int, int]]:
    types = set(first["types"]) | set(last["types"])
    rows = [
        (name, last["types"].get(name, 0) - first["types"].get(name, 0), last["types"].get(name, 0))
        for name in types
    ]
    return sorted((row for row in rows if row[1]), key=lambda row: -abs(row[1]))[:12]


def report(run: Run, args: argparse.Namespace) -> str:
    marks = milestones(run.minutes)
    names = sorted(
        {name for s in run.samples for name in s["rss"]}, key=lambda n: (n != "master", n)
    )
    out = [
        f"Soak: {run.minutes:g} min at {run.rate:g} requests/s (open loop), stores {run.stores},"
        f" 2 workers; RSS sampled every {args.sample:g} s.",
        "",
        "| process | idle | "
        + " | ".join(f"{m:g} min" for m in marks)
        + " | slope, 2nd half (MiB/10 min) | growth, 2nd half (MiB) |",
        "|---|---|" + "---|" * len(marks) + "---|---|",
    ]
    half = run.minutes / 2
    for name in names:
        cells = [f"{run.idle_rss.get(name, 0):.1f}"]
        for m in marks:
            value = _at(run, name, m)
            cells.append("-" if value is None else f"{value:.1f}")
        points = [
            (s["t_min"], s["rss"][name])
            for s in run.samples
            if s["t_min"] >= half and name in s["rss"]
        ]
        grow = points[-1][1] - points[0][1] if points else 0.0
        pids = ", ".join(str(p) for p in run.pids.get(name, []))
        out.append(
            f"| {name} (pid {pids}) | "
            + " | ".join(cells)
            + f" | {slope_per_10min(points):+.2f} | {grow:+.1f} |"
        )
    tally = run.tally
    sent, failed = sum(tally.sent.values()), sum(tally.failed.values())
    out += [
        "",
        f"Requests: {sent:,} HTTP ({failed:,} failed), {tally.ws_sessions:,} WebSocket sessions"
        f" ({tally.ws_failed} failed); arrivals with no free connection (late): {tally.late:,};"
        f" load generator CPU {run.client_cpu_pct:.0f}% of one core;"
        f" load average {min(v for _, v in run.load):.1f}-{max(v for _, v in run.load):.1f}.",
        "",
        "| operation | sent | failed |",
        "|---|---|---|",
    ]
    for name in MIX:
        out.append(f"| {name} | {tally.sent[name]:,} | {tally.failed[name]:,} |")
    if tally.statuses:
        out += [
            "",
            "Failures by status: "
            + ", ".join(f"{k}: {v}" for k, v in tally.statuses.most_common()),
        ]
    if tally.errors:
        out += ["", "Errors: " + "; ".join(f"{k} ({v})" for k, v in tally.errors.most_common(15))]
    if tally.ws_errors:
        out += [
            "",
            "WebSocket errors: "
            + "; ".join(f"{k} ({v})" for k, v in tally.ws_errors.most_common(8)),
        ]
    for name, dumps in sorted(run.dumps.items()):
        if len(dumps) < 2 or not name.startswith("worker"):
            continue
        first, last = dumps[0], dumps[-1]
        out += [
            "",
            f"{name}: RSS change across each object dump (the probe's own cost, MiB): "
            + ", ".join(f"{d.get('rss_cost_mib', '?')}" for d in dumps),
            f"{name}: gc-tracked objects {first['gc_objects']:,} ({first['label']}) ->"
            f" {last['gc_objects']:,} ({last['label']}); largest changes:"
            + ", ".join(f" {t} {d:+,} (now {n:,})" for t, d, n in _growth(first, last)),
        ]
        before = {c["holder"]: c["len"] for c in first.get("state", [])}
        grew = [
            (c["holder"], c["len"] - before.get(c["holder"], 0), c["len"])
            for c in last.get("state", [])
            if c["len"] != before.get(c["holder"], 0)
        ]
        grew.sort(key=lambda row: -abs(row[1]))
        out.append(
            f"{name}: the app's containers that changed ({first['label']} -> {last['label']}): "
            + ("; ".join(f"{h} {d:+,} (now {n:,})" for h, d, n in grew[:12]) or "none")
        )
        lru_before = {c["name"]: c["size"] for c in first.get("state_lru", [])}
        lru = [
            f"{c['name']} {c['size']}/{c['max']}"
            for c in last.get("state_lru", [])
            if c["size"] != lru_before.get(c["name"])
        ]
        out.append(f"{name}: lru_caches that changed: " + ("; ".join(lru[:12]) or "none"))
        for stat in last.get("tracemalloc", [])[:10]:
            out.append(
                f"{name}: tracemalloc {stat['size_diff'] / 1024:+.0f} KiB at {stat['where']}"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--rate", type=float, default=150.0, help="HTTP requests per second")
    parser.add_argument("--stores", choices=(LOCAL_STORES, SHARED_STORES), default=LOCAL_STORES)
    parser.add_argument(
        "--sample", type=float, default=SAMPLE_S, help="seconds between RSS samples"
    )
    parser.add_argument("--no-objects", action="store_true", help="skip the object-count dumps")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="trace allocations in the server (slower)"
    )
    parser.add_argument("--json", type=Path, help="write every sample and dump here")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="a server setting"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the server is stopped in soak()'s finally

    signal.signal(signal.SIGTERM, interrupt)
    run = asyncio.run(soak(args))
    text = report(run, args)
    print(text, flush=True)
    if args.json:
        data = {
            "minutes": run.minutes,
            "rate": run.rate,
            "stores": run.stores,
            "idle_rss": run.idle_rss,
            "samples": run.samples,
            "load": run.load,
            "dumps": run.dumps,
            "sent": dict(run.tally.sent),
            "failed": dict(run.tally.failed),
            "client_cpu_pct": run.client_cpu_pct,
        }
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
