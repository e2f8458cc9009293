"""Restart and fault figures of the supervisor and the database breaker (not a test).

    .venv/bin/python tests/ops/measure_operations.py            # ~2 minutes

Live ``python -m quart_app.serving`` with 2 workers on loopback, side by side in one run:

* replacement time: a worker is SIGKILLed; seconds until its slot listens again (the
  replacement serves), forked from the preloaded process (``WORKER_PRELOAD=true``) or
  a new interpreter (``false``);
* right after such a kill: the slowest of 20 new connections' /healthz answers;
* a hung PostgreSQL (fault proxy, ``DATABASE_OPERATION_TIMEOUT=3``): 12 logins on new
  connections with the database breaker on and off -- how many waited the timeout.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend_servers import POSTGRES_URL, PostgresRun, run
from fault_support import credentials, env_for
from faultproxy import FaultProxy
from live import Server
from sqlalchemy.engine import make_url

SERVE = [sys.executable, "-m", "quart_app.serving"]
KILLS = 3


def listening(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def worker_pids(server: Server) -> list[int]:
    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout
    master = server.process.pid if server.process is not None else 0
    pids = [int(part.split(",")[0]) for part in out.split("pid=")[1:]]
    return sorted({pid for pid in pids if pid != master})  # the master holds them too


def replacements(preload: bool, root: Path) -> tuple[list[float], list[float], int]:
    env = {"WORKER_PRELOAD": "true" if preload else "false"}
    seconds, slowest, resets = [], [], 0
    with Server(root / f"preload-{preload}", workers=2, launcher=SERVE, env=env) as server:
        for _ in range(KILLS):
            while listening(server.port) < 2:
                time.sleep(0.05)
            victim = worker_pids(server)[0]
            started = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            served: list[float] = []

            def watch(served: list[float] = served) -> None:
                # The dead worker's slot stops listening once it is reaped, and listens
                # again when its replacement serves.
                while listening(server.port) == 2:
                    time.sleep(0.005)
                while listening(server.port) < 2:
                    time.sleep(0.005)
                served.append(time.monotonic())

            watcher = threading.Thread(target=watch)
            watcher.start()
            waits = []
            for _ in range(20):
                asked = time.monotonic()
                try:
                    httpx.get(f"{server.url}/healthz", timeout=60)
                except httpx.TransportError:
                    resets += 1  # queued on the dying socket in the instant before the reap
                waits.append(time.monotonic() - asked)
            slowest.append(max(waits))
            watcher.join()
            seconds.append(served[0] - started)
            time.sleep(1.0)
    return seconds, slowest, resets


def hung_logins(cooldown: str, root: Path, url: str) -> list[float]:
    target = make_url(url)
    with FaultProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        env = env_for(
            proxied,
            DATABASE_CREATE_TABLES="false",
            DATABASE_OPERATION_TIMEOUT="3",
            DATABASE_BREAKER_COOLDOWN=cooldown,
        )
        with Server(root / f"breaker-{cooldown}", workers=2, launcher=SERVE, env=env) as server:
            httpx.post(f"{server.url}/register", json=credentials("alice"), timeout=60)
            proxy.hang()
            waits = []
            for _ in range(12):
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    asked = time.monotonic()
                    client.post("/login", json=credentials("alice"))
                    waits.append(time.monotonic() - asked)
            proxy.restore()
    return waits


def main() -> None:
    print(f"load average: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        print(
            "| workers from | replacement serves after (s) | slowest new request meanwhile"
            " (s) | new connections reset |"
        )
        print("|---|---|---|---|")
        for preload in (False, True):
            seconds, slowest, resets = replacements(preload, root)
            label = "preloaded process" if preload else "new interpreter"
            print(
                f"| {label} | {statistics.median(seconds):.2f} (all: "
                f"{', '.join(f'{s:.2f}' for s in seconds)}) | {max(slowest):.3f} |"
                f" {resets} of {20 * KILLS} |"
            )
        postgres = PostgresRun(POSTGRES_URL)
        postgres.create()
        try:
            print("\n| database breaker | logins that waited the 3 s timeout | median (s) |")
            print("|---|---|---|")
            for cooldown in ("0", "1"):
                run(postgres.reset())
                waits = hung_logins(cooldown, root, postgres.url)
                waited = sum(1 for w in waits if w >= 2.7)
                label = "off (0)" if cooldown == "0" else "on (cool-down 1 s)"
                print(f"| {label} | {waited} of {len(waits)} | {statistics.median(waits):.3f} |")
        finally:
            postgres.drop()
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
