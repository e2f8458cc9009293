"""What clients get during each dependency fault, and how soon it heals (not a test).

    .venv/bin/python -m benchmarks.studies._measure_faults        # every fault, ~3 minutes
    .venv/bin/python -m benchmarks.studies._measure_faults redis  # postgres, sqlite or redis

Live Hypercorn (2 workers, the default settings but cheap argon2 and a high rate limit)
on loopback. PostgreSQL (``TEST_POSTGRES_URL``, a database of its own, dropped at the
end) and Redis (``TEST_REDIS_URL``, a key prefix of its own) are reached through a fault
proxy (tests/helpers/faultproxy.py) that hangs or refuses; SQLite lives on a small tmpfs that is
filled up, or remounted read-only before a start (needs root). The shared servers
themselves are never touched. Prints a Markdown table: fault, what clients get, how long
they wait for it, and the time from the dependency's return to the first success, with
no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy.engine import make_url

from tests.helpers.backend_servers import POSTGRES_URL, REDIS_URL, PostgresRun
from tests.helpers.fault_support import credentials
from tests.helpers.faultproxy import FaultProxy
from tests.helpers.live import Server
from tests.helpers.support import SECRET

WORKERS = 2
#: The line each worker logs when it first meets the hang.
TRIPPED = {"breaker on": "Redis unavailable (", "breaker off": "rate-limit store unreachable"}
ROWS: list[tuple[str, str, str, str]] = []
BASE_ENV = {"JWT_SECRET_KEY": SECRET, "RATELIMIT_AUTH_LIMIT": "1000000", "LOG_FORMAT": "text"}


def row(fault: str, answer: str, wait: str, recovery: str) -> None:
    ROWS.append((fault, answer, wait, recovery))
    print(f"  {fault}: {answer}; {wait}; recovery {recovery}", file=sys.stderr, flush=True)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def until(call: Callable[[], httpx.Response], status: int, budget: float = 60.0) -> float:
    """Seconds until ``call`` answers ``status`` (polled every 20 ms)."""
    started = time.perf_counter()
    while time.perf_counter() - started < budget:
        with contextlib.suppress(httpx.HTTPError):
            if call().status_code == status:
                return time.perf_counter() - started
        time.sleep(0.02)
    raise RuntimeError(f"no {status} within {budget}s")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def answers(responses: list[httpx.Response]) -> str:
    statuses = sorted({r.status_code for r in responses})
    retry = sorted({r.headers.get("Retry-After", "-") for r in responses if r.status_code == 503})
    text = "/".join(map(str, statuses))
    return f"{text} (Retry-After {', '.join(retry)})" if retry else text


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- PostgreSQL ---------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database() -> Iterator[PostgresRun]:
    database = PostgresRun(POSTGRES_URL)
    database.create()
    try:
        yield database
    finally:
        database.drop()


def measure_postgres(tmp: Path) -> None:
    with postgres_database() as database:
        url = make_url(database.url)
        with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            env = {**BASE_ENV, "DATABASE_URL": through, "DATABASE_CREATE_TABLES": "false"}
            with Server(tmp / "pg", workers=WORKERS, env=env) as server:
                client = httpx.Client(base_url=server.url, timeout=60)
                client.post("/register", json=credentials("alice"))
                token = client.post("/login", json=credentials("alice")).json()["access_token"]
                bearer = {"Authorization": f"Bearer {token}"}
                for fault, inject in (("hung", proxy.hang), ("stopped", proxy.refuse)):
                    inject()
                    waits, responses = [], []
                    for n in range(5):
                        body = credentials(f"{fault}{n}")
                        response, took = timed(
                            lambda body=body: client.post("/register", json=body)  # type: ignore[misc]
                        )
                        waits.append(took)
                        responses.append(response)
                    protected = client.get("/protected", headers=bearer).status_code
                    proxy.restore()
                    back = credentials(f"{fault}-back")
                    healed = until(
                        lambda back=back: client.post("/register", json=back),  # type: ignore[misc]
                        201,
                    )
                    row(
                        f"PostgreSQL {fault} (/register, /login)",
                        f"{answers(responses)}; /protected {protected}",
                        f"{ms(min(waits))} to {ms(max(waits))}",
                        ms(healed),
                    )
            # Down while the workers start.
            proxy.refuse()
            started = time.perf_counter()
            with Server(tmp / "pg-start", workers=WORKERS, env=env, healthz=503) as server:
                up = time.perf_counter() - started
                ready = httpx.get(f"{server.url}/readyz", timeout=60)
                checked = httpx.get(f"{server.url}/protected", headers=bearer, timeout=60)
                proxy.restore()
                healed = until(lambda: httpx.get(f"{server.url}/readyz", timeout=60), 200)
                row(
                    "PostgreSQL down while workers start",
                    "workers start (as fast as with it); /healthz 503, /readyz"
                    f" {ready.status_code}, token checks {checked.status_code} until"
                    " revocations load; no worker exits",
                    f"{ms(up)} to start (busy machine)",
                    f"{ms(healed)} to /readyz 200",
                )


# --- SQLite on a small filesystem -----------------------------------------------------------


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def measure_sqlite(tmp: Path) -> None:
    disk = tmp / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk))
    try:
        env = {**BASE_ENV, "DATABASE_URL": f"sqlite+aiosqlite:///{disk / 'app.db'}"}
        with Server(tmp / "lite", workers=WORKERS, env=env) as server:
            client = httpx.Client(base_url=server.url, timeout=60)
            client.post("/register", json=credentials("alice"))
            filler = disk / "filler"
            with filler.open("wb") as out, contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            responses, waits = [], []
            for n in range(40):
                name = f"full{n:03d}-" + "x" * 50
                response, took = timed(
                    lambda name=name: client.post("/register", json=credentials(name))  # type: ignore[misc]
                )
                if response.status_code != 201:
                    responses.append(response)
                    waits.append(took)
            filler.unlink()
            healed = until(lambda: client.post("/register", json=credentials("after")), 201)
            row(
                "SQLite disk full (/register)",
                answers(responses) if responses else "never filled",
                f"{ms(statistics.median(waits))} median" if waits else "-",
                ms(healed),
            )
        # A database directory that cannot be written at start-up is a setting to fix:
        # the service stops with one line instead of serving.
        mount("-o", "remount,ro", str(disk))
        started = time.perf_counter()
        try:
            with Server(tmp / "lite", workers=WORKERS, env=env, healthz=None):
                outcome = "served"
        except RuntimeError as error:
            lines = [line for line in str(error).splitlines() if "DATABASE_URL" in line]
            line = lines[0].split("Error: ", 1)[-1].strip() if lines else str(error)
            outcome = f"start-up stops with one line: `{line}`"
        row(
            "SQLite directory read-only at start-up",
            outcome,
            ms(time.perf_counter() - started),
            "start again once writable",
        )
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=False)
        subprocess.run(["umount", "-l", str(disk)], check=False)


# --- Redis -----------------------------------------------------------------------------------


async def logins(url: str, count: int, concurrency: int = 4) -> list[float]:
    """Seconds each of ``count`` logins took, ``concurrency`` at a time."""
    took: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one() -> None:
            started = time.perf_counter()
            response = await client.post("/login", json=credentials("alice"))
            took.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text

        for _ in range(count // concurrency):
            await asyncio.gather(*(one() for _ in range(concurrency)))
    return took


def measure_redis(tmp: Path, cooldown: str) -> None:
    where = urlsplit(REDIS_URL)
    with (
        postgres_database() as database,
        FaultProxy(where.hostname or "127.0.0.1", where.port or 6379) as proxy,
    ):
        env = {
            **BASE_ENV,
            "DATABASE_URL": database.url,
            "DATABASE_CREATE_TABLES": "false",
            "REDIS_URL": f"redis://127.0.0.1:{proxy.port}{where.path or '/0'}",
            "REDIS_PREFIX": f"qa:faults:{time.time_ns()}:",
            "REDIS_BREAKER_COOLDOWN": cooldown,
        }
        label = "breaker on" if float(cooldown) > 0 else "breaker off"
        with Server(tmp / f"redis-{cooldown}", workers=WORKERS, env=env) as server:
            httpx.post(f"{server.url}/register", json=credentials("alice"), timeout=60)
            normal = asyncio.run(logins(server.url, 400))
            proxy.hang()
            # Until every worker has met the hang once (its breaker opens; off: it logs
            # that throttling is per worker now).
            first: list[float] = []
            while len(first) < 50 and server.log_path.read_text().count(TRIPPED[label]) < WORKERS:
                _, took = timed(
                    lambda: httpx.post(
                        f"{server.url}/login",
                        json=credentials("alice"),
                        headers={"Connection": "close"},
                        timeout=60,
                    )
                )
                first.append(took)
            hung = asyncio.run(logins(server.url, 400))
            # A logout during the hang, seen by every worker through the SQL poll?
            token = httpx.post(f"{server.url}/login", json=credentials("alice"), timeout=60)
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            logout, logout_took = timed(
                lambda: httpx.post(f"{server.url}/logout", headers=bearer, timeout=60)
            )
            closed = {"Connection": "close", **bearer}
            started = time.perf_counter()
            refused = 0
            while refused < 10 and time.perf_counter() - started < 10:
                status = httpx.get(f"{server.url}/protected", headers=closed, timeout=60)
                refused = refused + 1 if status.status_code == 401 else 0
            propagated = time.perf_counter() - started
            proxy.restore()
            healed = until(lambda: httpx.get(f"{server.url}/readyz", timeout=60), 200)
            if float(cooldown) > 0:
                healed = until_redis_ok(server.url)
        p99_normal, p99_hung = percentile(normal, 0.99), percentile(hung, 0.99)
        row(
            f"Redis hung, {label} (/login, 4 at a time)",
            "200",
            f"first failure per worker: {ms(max(first))}; after it p50"
            f" {ms(statistics.median(normal))} -> {ms(statistics.median(hung))}, p99"
            f" {ms(p99_normal)} -> {ms(p99_hung)} ({p99_hung - p99_normal:+.3f} s)",
            ms(healed),
        )
        row(
            f"Redis hung, {label} (/logout)",
            f"{logout.status_code}; refused on every worker within {ms(propagated)} (SQL poll)",
            ms(logout_took),
            "-",
        )


def until_redis_ok(url: str) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        ready = httpx.get(f"{url}/readyz", headers={"Connection": "close"}, timeout=60).json()
        if ready["checks"].get("redis") == "ok":
            return time.perf_counter() - started
        time.sleep(0.02)
    raise RuntimeError("Redis never reported ok again")


def main(groups: list[str]) -> None:
    chosen = groups or ["postgres", "sqlite", "redis"]
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        root = Path(tmp)
        if "postgres" in chosen:
            measure_postgres(root)
        if "sqlite" in chosen:
            measure_sqlite(root)
        if "redis" in chosen:
            measure_redis(root, "0")
            measure_redis(root, "2.0")
    print("| fault | what clients get | how long they wait | recovery after it returns |")
    print("|---|---|---|---|")
    for fault, answer, wait, recovery in ROWS:
        print(f"| {fault} | {answer} | {wait} | {recovery} |")


if __name__ == "__main__":
    main(sys.argv[1:])
