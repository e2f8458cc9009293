"""The benchmark runner: ``python -m benchmarks.run`` (``make bench``).

Starts the Flask baseline, quart_app (under Hypercorn, uvicorn and granian; with SQLite and
in-process stores, and with PostgreSQL + Redis) and the FastAPI peer on free loopback ports
with fresh databases, prepares accounts and tokens through each app's own /register and
/login, runs every scenario for a bounded time against each target in interleaved rounds
(A/B/A/B), prints a progress line per round, and writes ``REPORT.md`` and ``chart.png`` to
``benchmarks/results/`` (raw rounds go to ``runs.log`` there, which git ignores).

quart_app runs under its own ``hypercorn.toml`` (only ``--bind`` is overridden) with its
login/register/refresh throttle raised through the environment, since every simulated
client shares one loopback address; the report says so. Variants that cannot run on this
machine (PostgreSQL or Redis unreachable, granian not installed) are skipped, not failed,
and the report lists them with the reason.

Flags: ``--seconds`` per round, ``--rounds``, ``--scenarios a,b``, ``--tool``, ``--out``,
and ``--smoke`` (about a second per scenario, one round: a check that everything runs,
written to a temporary folder unless ``--out`` is given, so the committed results stay).
Servers start one after another, each with a wait scaled to the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.gateway import gateway_checks, gateway_specs, make_server
from benchmarks.loadgen import LoadResult, RequestSpec
from benchmarks.report import Record, Summary
from benchmarks.scenarios import Options, Scenario, Variant, build_scenarios
from benchmarks.servers import (
    QUART_BENCH_ENV,
    REPO,
    SHARED_STORES,
    Server,
    TargetSpec,
    check_shared_stores,
    postgres_admin_url,
    redis_url,
    shown,
    target_specs,
)

__all__ = ["Options", "Runner", "Scenario", "Variant", "build_scenarios", "evaluate", "main"]

RESULTS = REPO / "benchmarks" / "results"
CHART = "chart.png"
#: How long a server gets to answer /healthz on an idle machine (scaled up under load).
STARTUP_TIMEOUT_S = 120.0


# --- accounts and tokens ---------------------------------------------------------------


@dataclass
class Accounts:
    creds: list[tuple[str, str]] = field(default_factory=list)
    auth_values: list[str] = field(default_factory=list)  # "Bearer <access token>"


def post_json(url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 (loopback)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return int(resp.status), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return int(exc.code), json.loads(exc.read() or b"null")
        except ValueError:
            return int(exc.code), None


def mint_tokens(secret: str, count: int) -> list[str]:
    """HS256 access tokens shaped like quart_app's, for the FastAPI peer (it has no login)."""
    import jwt

    now = int(time.time())
    tokens = []
    for i in range(count):
        claims = {"sub": str(i + 1), "iat": now, "nbf": now, "exp": now + 3600}
        claims |= {"jti": str(uuid.uuid4()), "type": "access", "fresh": False}
        claims |= {"username": f"peer_{i}"}
        tokens.append(jwt.encode(claims, secret, algorithm="HS256"))
    return tokens


def prepare_accounts(server: Server, count: int) -> Accounts:
    """Register `count` fresh accounts and log each in, through the app's own routes."""
    if server.spec.kind == "fastapi":
        return Accounts([], [f"Bearer {t}" for t in mint_tokens(server.secret, count)])

    def one(_: int) -> tuple[tuple[str, str], str]:
        creds = (f"bench_{uuid.uuid4().hex[:16]}", uuid.uuid4().hex)
        body = {"username": creds[0], "password": creds[1]}
        status, reply = post_json(server.base_url + "/register", body)
        if status != 201:
            raise RuntimeError(f"{server.spec.key}: POST /register answered {status} {reply}")
        status, reply = post_json(server.base_url + "/login", body)
        if status != 200 or not isinstance(reply, dict):
            raise RuntimeError(f"{server.spec.key}: POST /login answered {status} {reply}")
        return creds, f"Bearer {reply['access_token']}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        pairs = list(pool.map(one, range(count)))
    return Accounts([c for c, _ in pairs], [a for _, a in pairs])


# --- worker sampling -----------------------------------------------------------------


class WorkerSampler(threading.Thread):
    """Samples RSS and established connections of each server worker every 0.5 s."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.halt = threading.Event()
        self.rss: dict[int, float] = {}
        self.conns: dict[int, int] = {}
        self.backlog = 0  # most connections seen waiting in the listen queue(s)
        self.ss = shutil.which("ss")

    def run(self) -> None:
        while not self.halt.wait(0.5):
            self.sample()

    def sample(self) -> None:
        import psutil

        from benchmarks.servers import rss_mib

        _, workers = self.server.pids()
        for pid, size in rss_mib(workers).items():
            self.rss[pid] = max(self.rss.get(pid, 0.0), size)
        for pid in workers:
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            count = sum(
                1
                for c in conns
                if c.status == psutil.CONN_ESTABLISHED
                and c.laddr
                and c.laddr.port == self.server.port
            )
            self.conns[pid] = max(self.conns.get(pid, 0), count)
        self.backlog = max(self.backlog, self.listen_queue())

    def listen_queue(self) -> int:
        """Connections the kernel has completed but the server has not accepted yet."""
        if self.ss is None:
            return 0
        try:
            out = subprocess.run(
                [self.ss, "-tlnH", f"( sport = :{self.server.port} )"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return 0
        # "LISTEN <Recv-Q> <Send-Q> ...": for a listening socket Recv-Q is the accept queue.
        return sum(int(f[1]) for f in (ln.split() for ln in out.splitlines()) if len(f) > 1)

    def stop(self) -> dict[str, Any]:
        self.halt.set()
        self.join(timeout=5)
        pids = sorted(self.rss)
        if not pids:
            return {}
        return {
            "workers": len(pids),
            "max RSS MiB per worker": ", ".join(f"{self.rss[p]:.0f}" for p in pids),
            "max established conns per worker": ", ".join(str(self.conns.get(p, 0)) for p in pids),
            "max not yet accepted (listen queue)": self.backlog if self.ss else "n/a (no ss)",
        }


# --- the runner ----------------------------------------------------------------------


def _to_record(
    scenario: Scenario, variant: Variant, rnd: int, result: LoadResult, extra: dict[str, Any]
) -> Record:
    detail = {
        "connect": result.connect_errors,
        "read/write": result.read_errors,
        "timeout": result.timeouts,
        "non-2xx": result.non_2xx,
        "unanswered at end": result.unanswered,
    }
    errors = sum(detail.values())
    return Record(
        scenario=scenario.key,
        target=variant.target,
        variant=variant.label,
        round=rnd,
        tool=result.tool,
        connections=result.connections,
        seconds=result.duration_s,
        requests=result.requests,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=errors,
        error_detail={k: v for k, v in detail.items() if v},
        extra=extra,
    )


def startup_timeout(base: float = STARTUP_TIMEOUT_S) -> float:
    """``base`` seconds, times the machine's load per core when it is busier than idle."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return base * max(1.0, load / cores)


class Runner:
    def __init__(self, opts: Options, scenarios: list[Scenario]) -> None:
        self.opts = opts
        self.scenarios = scenarios
        self.specs: dict[str, TargetSpec] = {**target_specs(), **gateway_specs()}
        self.secret = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
        self.workdir = Path(tempfile.mkdtemp(prefix="quart-bench-"))
        self.servers: dict[str, Server] = {}
        self.accounts: dict[str, Accounts] = {}
        self.broken: dict[str, str] = {}
        self.skipped: dict[str, str] = {}  # target -> why it cannot run here
        self.skipped_variants: list[str] = []  # for the report: scenario, variant, reason
        self.notes: list[str] = []
        self.shared_stores: tuple[str | None, str] | None = None  # check_shared_stores()
        self.records: list[Record] = []
        self.micro: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.started = time.monotonic()
        self.rounds_now = opts.rounds
        self.log = opts.out / "runs.log"

    def progress(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.0f}s] {text}", flush=True)

    def server(self, key: str) -> Server | None:
        """The running server for `key`, started (and its accounts made) on first use."""
        if key in self.broken or key in self.skipped:
            return None
        if key not in self.servers:
            reason = self.skip_reason(self.specs[key])
            if reason is not None:
                self.skipped[key] = reason
                self.progress(f"skipping {key}: {reason}")
                return None
            server = make_server(self.specs[key], self.workdir, self.secret)
            self.progress(f"starting {key} on {server.base_url}")
            self.servers[key] = server
            try:
                server.start(timeout=startup_timeout())
                self.accounts[key] = prepare_accounts(server, self.opts.accounts)
            except Exception as exc:
                self.broken[key] = str(exc)
                self.failures.append(f"{key}: {exc}\n\n```\n{server.log_tail()}\n```")
                self.progress(f"{key} FAILED: {str(exc).splitlines()[0]}")
                self.stop_server(server)
                return None
        return self.servers[key]

    def skip_reason(self, spec: TargetSpec) -> str | None:
        """Why `spec` cannot run on this machine (a skip, not a failure), or None."""
        program = Path(spec.argv[0])
        if spec.optional and not program.exists():
            # A Debian program (nginx) or one of the bench extras.
            debian = str(program.parent) in ("/usr/sbin", "/usr/bin")
            how = f"apt-get install {program.name}" if debian else "pip install -e '.[bench]'"
            return f"{program.name} is not installed ({how})"
        if spec.stores == SHARED_STORES:
            if self.shared_stores is None:
                self.shared_stores = check_shared_stores()
                reason, versions = self.shared_stores
                if reason is None:
                    self.notes.append(
                        f"PostgreSQL + Redis profile: {versions}; PostgreSQL at"
                        f" {shown(postgres_admin_url())} (BENCH_POSTGRES_URL), Redis at"
                        f" {shown(redis_url())} (BENCH_REDIS_URL), both on this machine's"
                        " loopback and cores; one fresh database and key prefix per server,"
                        " removed at the end."
                    )
            return self.shared_stores[0]
        return None

    def stop_server(self, server: Server) -> None:
        server.stop()
        if server.cleanup_error:
            self.failures.append(server.cleanup_error)
            self.progress(server.cleanup_error)

    def stop_unneeded(self, upcoming: list[Scenario]) -> None:
        needed = {v.target for s in upcoming for v in s.variants}
        for key in list(self.servers):
            if key not in needed:
                self.stop_server(self.servers.pop(key))

    def stop_all(self) -> None:
        for key in list(self.servers):
            self.stop_server(self.servers.pop(key))

    def prestart(self) -> None:
        """Start every server the scenarios need, one after another.

        All at once, nine servers importing their frameworks on two busy cores took longer
        than any fixed wait; one at a time, each gets the machine and a wait scaled to it.
        """
        for key in dict.fromkeys(v.target for s in self.scenarios for v in s.variants):
            self.server(key)

    def run(self) -> None:
        try:
            self.prestart()
            for index, scenario in enumerate(self.scenarios):
                self.progress(f"scenario {index + 1}/{len(self.scenarios)}: {scenario.key}")
                try:
                    self.run_scenario(scenario)
                except Exception as exc:
                    self.failures.append(f"{scenario.key}: {type(exc).__name__}: {exc}")
                    self.progress(f"{scenario.key} FAILED: {exc}")
                self.stop_unneeded(self.scenarios[index + 1 :])
        finally:
            self.stop_all()
            if not self.opts.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def run_scenario(self, scenario: Scenario) -> None:
        if scenario.kind == "micro":
            self.run_micro()
            return
        for variant in scenario.variants:
            self.server(variant.target)
        rounds = 1 if self.opts.smoke else (scenario.rounds or self.opts.rounds)
        self.rounds_now = rounds
        for rnd in range(1, rounds + 1):
            for variant in scenario.variants:
                server = self.server(variant.target)
                if server is None:
                    reason = self.skipped.get(variant.target)
                    line = f"{scenario.key}: {variant.target} ({variant.label}): {reason}"
                    if reason is not None and line not in self.skipped_variants:
                        self.skipped_variants.append(line)
                    continue
                try:
                    self.run_variant(scenario, variant, server, rnd)
                except Exception as exc:
                    msg = f"{scenario.key} {variant.target} {variant.label} round {rnd}: {exc}"
                    self.failures.append(msg)
                    self.progress(f"FAILED {msg}")

    def record(self, rec: Record) -> None:
        self.records.append(rec)
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(rec)) + "\n")
        self.progress(
            f"  {rec.scenario} round {rec.round}/{self.rounds_now} {rec.target}"
            f" {rec.variant} ({rec.tool}, c={rec.connections}): {rec.rps:,.0f} req/s,"
            f" p50 {rec.p50_ms:.1f} ms, p99 {rec.p99_ms:.1f} ms, errors {rec.errors}"
            + (f", server CPU {rec.cpu_us:,.0f} µs/req" if rec.cpu_us is not None else "")
        )

    def run_variant(self, scenario: Scenario, variant: Variant, server: Server, rnd: int) -> None:
        from benchmarks.tools import run_get, run_locust

        accounts = self.accounts[variant.target]
        url = server.base_url + variant.path
        auth = accounts.auth_values if variant.auth else []
        seconds = self.opts.seconds
        if not self.opts.smoke:
            seconds = max(seconds, scenario.min_seconds)
        if scenario.kind == "get":
            sampler = WorkerSampler(server) if scenario.sample_workers else None
            if sampler is not None:
                sampler.start()
            cpu_before = server.cpu_seconds()
            try:
                result = run_get(self.opts.tool, url, auth, scenario.connections, seconds)
            finally:
                extra = sampler.stop() if sampler is not None else {}
            rec = _to_record(scenario, variant, rnd, result, extra)
            if result.requests:
                rec.cpu_us = (server.cpu_seconds() - cpu_before) / result.requests * 1e6
            self.record(rec)
        elif scenario.kind == "storm":
            self.run_storm(scenario, variant, server, rnd, url, auth)
        elif scenario.kind == "custom" and scenario.measure is not None:
            for rec in scenario.measure(self, scenario, variant, server, rnd):
                self.record(rec)
        elif scenario.kind == "locust":
            result, failures = run_locust(
                server.base_url, "ProtectedUser", scenario.connections, seconds, self.workdir
            )
            rec = _to_record(scenario, variant, rnd, result, {})
            rec.error_detail = failures or rec.error_detail
            self.record(rec)

    def run_storm(
        self,
        scenario: Scenario,
        variant: Variant,
        server: Server,
        rnd: int,
        url: str,
        auth: list[str],
    ) -> None:
        from benchmarks.tools import run_loadgen

        protected = [RequestSpec(path=variant.path, headers={"Authorization": a}) for a in auth]
        rate = self.opts.storm_rate
        seconds = self.opts.seconds

        def measure() -> LoadResult:
            return run_loadgen(
                url, protected, scenario.connections, seconds, processes=1, rate=rate
            )

        quiet = measure()
        self.record(_to_record(scenario, Variant(variant.target, "quiet"), rnd, quiet, {}))
        logins = [
            RequestSpec(
                "POST",
                "/login",
                {"Content-Type": "application/json"},
                json.dumps({"username": u, "password": p}),
            )
            for u, p in self.accounts[variant.target].creds
        ]
        storm_result: list[LoadResult] = []
        storm_error: list[BaseException] = []

        def storm() -> None:
            try:
                storm_result.append(
                    run_loadgen(
                        server.base_url + "/login",
                        logins,
                        self.opts.storm_clients,
                        seconds + 2.0,
                        processes=1,
                        timeout_s=30.0,
                    )
                )
            except BaseException as exc:
                storm_error.append(exc)

        thread = threading.Thread(target=storm, daemon=True)
        thread.start()
        time.sleep(1.5)  # let the storm reach full strength first
        loud = measure()
        thread.join(timeout=seconds + 120)
        label = f"+{self.opts.storm_clients} logins"
        self.record(_to_record(scenario, Variant(variant.target, label), rnd, loud, {}))
        if storm_error:
            raise RuntimeError(f"login storm failed: {storm_error[0]}")
        if storm_result:
            rec = _to_record(
                scenario,
                Variant(variant.target, "/login storm"),
                rnd,
                storm_result[0],
                {},
            )
            self.record(rec)

    def run_micro(self) -> None:
        argv = [sys.executable, "-m", "benchmarks.micro"]
        if self.opts.quick_micro:
            argv.append("--quick")
        env = dict(os.environ)
        env.update(QUART_BENCH_ENV)
        instance = self.workdir / "micro"
        instance.mkdir(parents=True, exist_ok=True)
        env["INSTANCE_PATH"] = str(instance)
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{instance / 'micro.db'}"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.progress("  verify-micro: in-process micro-benchmarks")
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=600, check=False, cwd=REPO, env=env
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"benchmarks.micro failed: {proc.stderr[-1500:]}")
        self.micro = json.loads(lines[-1])
        for row in self.micro:
            if row.get("error"):
                self.failures.append(f"verify-micro {row['name']}: {row['error']}")
            else:
                self.progress(f"  {row['name']}: {row['us']:.1f} µs")


# --- verdicts ----------------------------------------------------------------------


def evaluate(summaries: list[Summary], micro: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The performance targets, each with the figure that decides it."""

    def get(scenario: str, target: str, variant: str = "/protected") -> Summary | None:
        return next(
            (
                s
                for s in summaries
                if s.scenario == scenario and s.target == target and s.variant == variant
            ),
            None,
        )

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    checks: list[tuple[str, str, str]] = []
    for ours in ("quart-hypercorn", "quart-serve", "quart-serve-h11"):
        quart, flask = get("protected-64", ours), get("protected-64", "flask-gunicorn")
        if quart and flask and flask.rps:
            ratio = quart.rps / flask.rps
            cpu = quart.cpu_us
            checks.append(
                (
                    f"64 conns ({ours}): req/s ≥ 5x Flask, server CPU ≤ 50 µs per request",
                    f"{ratio:.2f}x ({quart.rps:,.0f} vs {flask.rps:,.0f} req/s);"
                    f" CPU {cpu or 0:.0f} µs/req (Flask {flask.cpu_us or 0:.0f});"
                    f" p99 {quart.p99_ms:.1f} vs {flask.p99_ms:.1f} ms",
                    verdict(ratio >= 5.0 and cpu is not None and cpu <= 50.0),
                )
            )
        quart, flask = get("protected-1000", ours), get("protected-1000", "flask-gunicorn")
        if quart and flask:
            figure = f"{quart.errors} errors; p99 {quart.p99_ms:.1f} vs {flask.p99_ms:.1f} ms"
            if flask.p99_ms:
                figure += f" ({quart.p99_ms / flask.p99_ms:.2f}x)"
            checks.append(
                (
                    f"1,000 conns ({ours}): 0 errors, p99 ≤ 0.3x Flask's",
                    figure,
                    verdict(quart.errors == 0 and quart.p99_ms <= 0.3 * flask.p99_ms),
                )
            )
    prot = get("auth-overhead", "quart-noop-hypercorn")
    noop = get("auth-overhead", "quart-noop-hypercorn", "/noop")
    if prot and noop and noop.rps:
        ratio = prot.rps / noop.rps
        checks.append(
            (
                "auth overhead: /protected ≥ 0.90x /noop req/s",
                f"{ratio:.2f}x ({prot.rps:,.0f} vs {noop.rps:,.0f} req/s)",
                verdict(ratio >= 0.90),
            )
        )
    slow = get("auth-overhead", "quart-noop-nofast-hypercorn", "/protected, FAST_PATH=false")
    if slow and noop and noop.rps:
        ratio = slow.rps / noop.rps
        checks.append(
            (
                "auth overhead, both through Quart (FAST_PATH=false vs /noop)",
                f"{ratio:.2f}x ({slow.rps:,.0f} vs {noop.rps:,.0f} req/s; separate servers)",
                verdict(ratio >= 0.90),
            )
        )
    quart, peer = get("uvicorn-peer", "quart-uvicorn"), get("uvicorn-peer", "fastapi-uvicorn")
    if quart and peer and peer.rps:
        ratio = quart.rps / peer.rps
        checks.append(
            (
                "uvicorn: quart_app ≥ 1.0x FastAPI + PyJWT",
                f"{ratio:.2f}x ({quart.rps:,.0f} vs {peer.rps:,.0f} req/s)",
                verdict(ratio >= 1.0),
            )
        )
    stormed = {s.target for s in summaries if s.scenario == "login-storm"}
    storm_target = next((t for t in ("quart-serve", "quart-hypercorn") if t in stormed), "")
    quiet = get("login-storm", storm_target, "quiet")
    loud = next(
        (
            s
            for s in summaries
            if s.scenario == "login-storm"
            and s.target == storm_target
            and s.variant.endswith(" logins")
        ),
        None,
    )
    if quiet and loud and quiet.p99_ms:
        ratio = loud.p99_ms / quiet.p99_ms
        checks.append(
            (
                f"login storm ({storm_target}): /protected p99 ≤ 2x without it",
                f"{ratio:.2f}x (p99 {loud.p99_ms:.1f} vs {quiet.p99_ms:.1f} ms)",
                verdict(ratio <= 2.0),
            )
        )
    by_name = {row["name"]: row.get("us") for row in micro}
    cost = by_name.get("quart_app verify_jwt_in_request")
    if cost is not None:
        pyjwt, floor = by_name.get("PyJWT jwt.decode"), by_name.get("HMAC-SHA256 floor")
        checks.append(
            (
                "verification µs per request (decorator included)",
                f"{cost:.1f} µs; PyJWT decode {pyjwt or 0:.1f} µs; HMAC floor {floor or 0:.1f} µs",
                "reported",
            )
        )
    rss = get("protected-1000", "quart-hypercorn")
    if rss and rss.extra:
        checks.append(
            (
                "RSS per worker at 1,000 conns",
                f"{rss.extra.get('max RSS MiB per worker', '?')} MiB",
                "reported",
            )
        )
    checks += gateway_checks(get, verdict)
    return checks


def run_notes(opts: Options) -> list[str]:
    import tomllib

    from benchmarks.tools import wrk_path

    notes = []
    if opts.tool == "wrk":
        notes.append("GET scenarios measured with wrk (benchmarks/wrk_report.lua), 2 threads.")
    else:
        reason = " (wrk is not installed)" if wrk_path() is None else ""
        notes.append(
            f"GET scenarios measured with the Python load generator{reason}: "
            "benchmarks/loadgen.py, 2 processes, uvloop, raw keep-alive sockets."
        )
    try:
        with open(REPO / "hypercorn.toml", "rb") as fh:
            hc = tomllib.load(fh)
        notes.append(
            "quart_app under hypercorn.toml: "
            + ", ".join(f"{k}={hc[k]!r}" for k in ("workers", "worker_class", "backlog") if k in hc)
            + "; only --bind overridden."
        )
    except (OSError, ValueError):
        notes.append("hypercorn.toml not found: Hypercorn defaults.")
    notes.append(
        "Throttling raised for the run through quart_app's environment: "
        + ", ".join(f"{k}={v}" for k, v in QUART_BENCH_ENV.items())
        + " (every simulated client shares 127.0.0.1)."
    )
    try:
        import httptools  # noqa: F401
    except ImportError:
        notes.append(
            "uvicorn ran with its pure-Python h11 parser: httptools is not installed"
            " (uvicorn[standard] would add it); both uvicorn targets share that handicap."
        )
    notes.append(
        "Load tool, servers and Python all share the same cores: figures are relative;"
        " compare rows of one run, not across machines."
    )
    return notes


def parse_args(argv: list[str] | None) -> tuple[Options, list[str] | None]:
    parser = argparse.ArgumentParser(
        description="quart_app benchmark runner: every server side by side, interleaved rounds"
    )
    parser.add_argument("--seconds", type=float, default=None, help="seconds per round (6)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3)")
    parser.add_argument("--scenarios", default=None, help="comma-separated keys (default all)")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that everything runs: about a second per scenario, one round, figures"
        " meaningless; written to a new temporary folder unless --out is given",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"folder for REPORT.md and chart.png (default {RESULTS.relative_to(REPO)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)

    from benchmarks.tools import wrk_path

    if args.tool == "wrk" and wrk_path() is None:
        parser.error("--tool wrk: wrk is not installed (apt-get install wrk)")
    tool = "wrk" if args.tool in ("auto", "wrk") and wrk_path() else "python-loadgen"
    smoke = args.smoke
    opts = Options(
        seconds=args.seconds or (1.0 if smoke else 6.0),
        rounds=args.rounds or (1 if smoke else 3),
        tool=tool,
        accounts=4 if smoke else 32,
        storm_clients=4 if smoke else 32,
        storm_rate=100.0 if smoke else 250.0,
        locust_users=8 if smoke else 32,
        quick_micro=smoke,
        out=args.out or (Path(tempfile.mkdtemp(prefix="quart-bench-smoke-")) if smoke else RESULTS),
        keep=args.keep,
        smoke=smoke,
    )
    keys = [k.strip() for k in args.scenarios.split(",")] if args.scenarios else None
    return opts, keys


def main(argv: list[str] | None = None) -> int:
    from benchmarks.chart import draw_chart, from_report
    from benchmarks.report import (
        machine_info,
        source_revision,
        summarise,
        write_report,
    )
    from benchmarks.tools import raise_nofile, wrk_version

    opts, keys = parse_args(argv)
    scenarios = build_scenarios(opts)
    if keys:
        unknown = set(keys) - {s.key for s in scenarios}
        if unknown:
            print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s.key in keys]
    raise_nofile()
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "runs.log").unlink(missing_ok=True)
    machine = machine_info(wrk_version())
    machine["quart_app revision"] = source_revision(REPO)
    print(
        f"benchmarks: {len(scenarios)} scenarios, {opts.rounds} round(s) of {opts.seconds:g} s,"
        f" load tool {opts.tool}; report in {opts.out}",
        flush=True,
    )
    runner = Runner(opts, scenarios)
    runner.run()
    summaries = summarise(runner.records)
    listed = [(s.key, s.title, s.how) for s in scenarios]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    machine["load average at end"] = " ".join(f"{x:.2f}" for x in load)
    settings = {
        "run": f"{opts.rounds} round(s) x {opts.seconds:g} s per target and scenario,"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    }
    write_report(
        opts.out,
        machine=machine,
        scenarios=listed,
        summaries=summaries,
        micro=runner.micro,
        checks=evaluate(summaries, runner.micro),
        notes=run_notes(opts) + runner.notes,
        failures=runner.failures,
        skipped=runner.skipped_variants,
        settings=settings,
        chart_name=CHART,
    )
    # The title a redraw from the report gets: the run's length and whether the machine was busy.
    title = from_report(opts.out / "REPORT.md")[3]
    draw_chart(opts.out / CHART, listed, summaries, runner.micro, title)
    runner.progress(f"wrote {opts.out / 'REPORT.md'} and {opts.out / CHART}")
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())
