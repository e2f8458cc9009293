"""What the runner measures: every scenario, in run order.

A scenario is a :class:`Scenario`: a key, a title, how it is measured, and its variants
(a target from ``benchmarks.servers`` and the path asked of it). The built-in kinds are
``get`` (a load tool against a URL), ``storm`` (fixed-rate /protected while clients log in
back to back), ``locust`` and ``micro``. A new scenario lives in a module of its own that
defines ``scenarios(opts) -> list[Scenario]`` and is named in :data:`MODULES`; a kind of
its own passes ``measure``, which the runner calls for each variant and round with
``(runner, scenario, variant, server, round)`` and which returns the rows
(``benchmarks.report.Record``) to report. The in-process micro-benchmarks stay last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from benchmarks.servers import has_fast_path_setting, has_serve_launcher

#: Modules adding scenarios (each with ``scenarios(opts) -> list[Scenario]``), in order.
MODULES: tuple[str, ...] = ("benchmarks.gateway", "benchmarks.ws_sockets", "benchmarks.http2")


@dataclass(frozen=True)
class Variant:
    """One thing measured in a scenario: a target and what is asked of it."""

    target: str
    label: str
    path: str = "/protected"
    auth: bool = True


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    how: str
    kind: str  # "get", "storm", "locust" or "micro"
    variants: tuple[Variant, ...] = ()
    connections: int = 64
    sample_workers: bool = False
    min_seconds: float = 0.0  # rounds last at least this long (smoke runs excepted)
    rounds: int | None = None  # None: --rounds
    # kind "custom": called per variant and round, returns the rows to report.
    measure: Callable[..., list[Any]] | None = None


@dataclass
class Options:
    seconds: float
    rounds: int
    tool: str
    accounts: int
    storm_clients: int
    storm_rate: float
    locust_users: int
    quick_micro: bool
    out: Path
    keep: bool
    smoke: bool = False


def build_scenarios(opts: Options) -> list[Scenario]:
    """Every scenario, in run order: the built-in ones, those of :data:`MODULES`, micro."""
    scenarios = _builtin(opts)
    micro = [s for s in scenarios if s.kind == "micro"]
    scenarios = [s for s in scenarios if s.kind != "micro"]
    for name in MODULES:
        scenarios += import_module(name).scenarios(opts)
    return scenarios + micro


def _builtin(opts: Options) -> list[Scenario]:
    protected = Variant("quart-hypercorn", "/protected")
    baseline = Variant("flask-gunicorn", "/protected")
    # quart_app's own launcher (one SO_REUSEPORT socket per worker), when it has one.
    serve = (
        (Variant("quart-serve", "/protected"), Variant("quart-serve-h11", "/protected"))
        if has_serve_launcher()
        else ()
    )
    # What `make run` starts: the launcher when there is one.
    make_run = serve[0] if serve else protected
    # With quart_app's claims fast path, /protected skips Quart and /noop does not: measure
    # /protected through Quart too, so the ratio reads "verification cost" like for like.
    nofast = (
        (Variant("quart-noop-nofast-hypercorn", "/protected, FAST_PATH=false"),)
        if has_fast_path_setting()
        else ()
    )
    # The same app and server with PostgreSQL + Redis behind it instead of SQLite and
    # in-process revocations and throttles: what running on several hosts costs.
    stores = (
        Variant("quart-hypercorn", "/protected"),
        Variant("quart-hypercorn-pg", "/protected"),
    )
    tool = opts.tool
    storm_how = (
        f"python-loadgen: GET /protected at a fixed {opts.storm_rate:g} req/s over 16"
        " connections (latency from the intended send time), alone and while"
        f" {opts.storm_clients} clients POST /login back to back"
    )
    return [
        Scenario(
            "protected-64",
            "GET /protected, 64 connections",
            f"{tool}, 64 keep-alive connections, one HS256 token per request from a pool",
            "get",
            (baseline, protected, *serve),
            64,
            sample_workers=True,
        ),
        Scenario(
            "protected-1000",
            "GET /protected, 1,000 connections",
            f"{tool}, 1,000 connections, rounds of at least 12 s with a 10 s timeout (a"
            " connection left unserved for longer is a timeout, not an unseen request);"
            " errors = resets, timeouts, non-2xx; worker RSS, connections per worker and the"
            " listen queue sampled every 0.5 s; quart_app under granian for reference (the"
            " server's own per-request cost decides this one)",
            "get",
            (baseline, protected, *serve, Variant("quart-granian", "/protected")),
            1000,
            sample_workers=True,
            min_seconds=12.0,
        ),
        Scenario(
            "auth-overhead",
            "/protected vs unauthenticated /noop, same server",
            f"{tool}, 64 connections; quart_app served with one extra no-auth route"
            " (benchmarks/peers/quart_noop.py) under hypercorn.toml; Flask for reference",
            "get",
            (
                Variant("quart-noop-hypercorn", "/protected"),
                Variant("quart-noop-hypercorn", "/noop", "/noop", auth=False),
                *nofast,
                Variant("flask-gunicorn", "/protected"),
                Variant("flask-gunicorn", "/noop", "/noop", auth=False),
            ),
            64,
        ),
        Scenario(
            "uvicorn-peer",
            "under uvicorn: quart_app vs FastAPI + PyJWT",
            f"{tool}, 64 connections; both under uvicorn, 2 workers, same loop and parser",
            "get",
            (Variant("quart-uvicorn", "/protected"), Variant("fastapi-uvicorn", "/protected")),
            64,
            sample_workers=True,
        ),
        Scenario(
            "servers",
            "quart_app under Hypercorn, uvicorn and granian",
            f"{tool}, 64 connections; the same app (SQLite, in-process stores) under"
            " hypercorn.toml, uvicorn (2 workers, --backlog 2048, access log off) and granian"
            " (--interface asgi --workers 2 --loop uvloop --backlog 2048, access log off)",
            "get",
            (
                Variant("quart-hypercorn", "/protected"),
                Variant("quart-uvicorn", "/protected"),
                Variant("quart-granian", "/protected"),
            ),
            64,
            sample_workers=True,
        ),
        Scenario(
            "login-storm",
            "/protected p99 with and without continuous logins",
            storm_how,
            "storm",
            (make_run, Variant("flask-gunicorn", "/protected")),
            16,
        ),
        Scenario(
            "backends-protected",
            "GET /protected: SQLite + in-process stores vs PostgreSQL + Redis",
            f"{tool}, 64 connections; quart_app under hypercorn.toml twice: quart-hypercorn"
            " with its SQLite file and in-process revocations and throttles, quart-hypercorn-pg"
            " with DATABASE_URL on a fresh PostgreSQL database (bench_<id>, migrated to head"
            " at start, dropped at the end) and REDIS_URL with its own key prefix (bench:<id>:)",
            "get",
            stores,
            64,
            sample_workers=True,
        ),
        Scenario(
            "backends-login",
            "/protected p99 under a login storm: SQLite + in-process vs PostgreSQL + Redis",
            f"{storm_how}; the same two quart_app targets as backends-protected (every login"
            " reads the user from the database and passes the login throttle, which lives in"
            " Redis for quart-hypercorn-pg)",
            "storm",
            stores,
            16,
        ),
        Scenario(
            "locust",
            "Locust ProtectedUser (one Locust process)",
            f"locust -f benchmarks/locustfile.py ProtectedUser -u {opts.locust_users}, one"
            " round of 20 s per target; the /protected row over the second half of the run"
            " (after every user has registered and logged in, which costs the Flask baseline"
            " seconds of scrypt); one Locust process tops out near ~4,500 req/s here",
            "locust",
            (make_run, Variant("flask-gunicorn", "/protected")),
            opts.locust_users,
            min_seconds=20.0,
            rounds=1,
        ),
        Scenario(
            "verify-micro",
            "verification cost per request, in-process",
            "python -m benchmarks.micro: best of 5 repeats, CPU µs per operation"
            " (process time), one core",
            "micro",
        ),
    ]
