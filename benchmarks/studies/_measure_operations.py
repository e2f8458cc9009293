"""Restart and fault figures of the supervisor and the database breaker (not a test).

    .venv/bin/python -m benchmarks.studies._measure_operations            # ~2 minutes

Live ``python -m quart_app.serving`` with 2 workers on loopback, side by side in one run:

* replacement time: a worker is SIGKILLed; seconds until its slot listens again (the
  replacement serves), forked from the preloaded process (``WORKER_PRELOAD=true``) or
  a new interpreter (``false``);
* right after such a kill: the slowest of 20 new connections' /healthz answers;
* a hung PostgreSQL (fault proxy, ``DATABASE_OPERATION_TIMEOUT=3``): 12 logins on new
  connections with the database breaker on and off -- how many waited the timeout;
* ``--steering`` (only this): 6 clients open a new connection per request (GET /healthz)
  while a worker is SIGKILLed, 3 times, with ``REUSEPORT_STEERING`` off and on: the
  longest wait of a connection opened between the kill and the replacement serving, and
  how many were refused or reset.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from tests.helpers.backend_servers import POSTGRES_URL, PostgresRun, run
from tests.helpers.fault_support import credentials, env_for
from tests.helpers.faultproxy import FaultProxy
from tests.helpers.live import Server

SERVE = [sys.executable, "-m", "quart_app.serving"]
KILLS = 3
#: A new connection that waited this long (s) waited for the replacement.
SLOW = 0.5


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


def _running(server: Server) -> int:
    """How many workers have logged "Running on" (each once it serves)."""
    return len(re.findall(r"Running on", server.log_path.read_text(errors="replace")))


def replacements(preload: bool, root: Path) -> tuple[list[float], list[float], int]:
    env = {"WORKER_PRELOAD": "true" if preload else "false"}
    seconds, slowest, resets = [], [], 0
    with Server(root / f"preload-{preload}", workers=2, launcher=SERVE, env=env) as server:
        for _ in range(KILLS):
            while listening(server.port) < 2 or len(worker_pids(server)) < 2:
                time.sleep(0.05)
            victim = worker_pids(server)[0]
            running = _running(server)
            started = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            served: list[float] = []

            def watch(served: list[float] = served, running: int = running) -> None:
                # The dead worker's socket keeps listening in the master: its
                # replacement serves once it logs "Running on".
                while _running(server) == running:
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


async def _open_one(port: int) -> str:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return "refused"
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=120)
    except (ConnectionResetError, TimeoutError):
        return "reset"
    finally:
        writer.close()
    return "ok" if answer.startswith(b"HTTP/1.1 200") else "reset"


def _new_connections(
    port: int, stop: threading.Event, found: list[tuple[float, float, str]]
) -> threading.Thread:
    async def client() -> None:
        while not stop.is_set():
            opened = time.monotonic()
            outcome = await _open_one(port)
            found.append((opened, time.monotonic() - opened, outcome))

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(6)))

    return threading.Thread(target=lambda: asyncio.run(main()))


def steered_kills(steering: bool, root: Path) -> dict[str, list[float]]:
    """Per kill, over the new connections opened between the kill and the replacement
    serving: how many, the longest wait, how many waited longer than ``SLOW`` (for the
    replacement: the other worker answers within a fraction of that), and how many were
    refused or reset."""
    env = {"REUSEPORT_STEERING": "true" if steering else "false"}
    figures: dict[str, list[float]] = {"opened": [], "longest": [], "waited": [], "failed": []}
    with Server(root / f"steering-{steering}", workers=2, launcher=SERVE, env=env) as server:
        found: list[tuple[float, float, str]] = []
        stop = threading.Event()
        load = _new_connections(server.port, stop, found)
        load.start()
        try:
            for _ in range(KILLS):
                while listening(server.port) < 2 or len(found) < 50:
                    time.sleep(0.05)
                time.sleep(1.0)  # both workers serve and the steering is gone
                victim = worker_pids(server)[0]
                running = _running(server)
                killed = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                while _running(server) == running:
                    time.sleep(0.005)
                served = time.monotonic()
                time.sleep(1.0)  # what waited for the replacement is answered by now
                window = [f for f in found if killed <= f[0] <= served]
                figures["opened"].append(len(window))
                figures["longest"].append(max((wait for _, wait, _ in window), default=0.0))
                figures["waited"].append(sum(1 for _, wait, _ in window if wait > SLOW))
                figures["failed"].append(sum(1 for _, _, outcome in window if outcome != "ok"))
        finally:
            stop.set()
            load.join(timeout=180)
    return figures


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
    if "--steering" in sys.argv:
        with tempfile.TemporaryDirectory() as scratch:
            print(
                "| REUSEPORT_STEERING | new connections opened between kill and replacement"
                f" serving | of them waiting over {SLOW} s | longest wait"
                " (s) | refused or reset |"
            )
            print("|---|---|---|---|---|")
            for steering in (False, True):
                figures = steered_kills(steering, Path(scratch))

                def cell(key: str, fmt: str = "{:.0f}", f: dict[str, list[float]] = figures) -> str:
                    return ", ".join(fmt.format(value) for value in f[key])

                print(
                    f"| {'true' if steering else 'false'} | {cell('opened')} | {cell('waited')}"
                    f" | {cell('longest', '{:.3f}')} | {cell('failed')} |"
                )
        print(f"load average: {os.getloadavg()[0]:.1f}")
        return
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
