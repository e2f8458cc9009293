"""What sessions cost: /protected throughput, and login and refresh latency, of two
source trees side by side in one run (e.g. the release before sessions, and this one).

Each tree is served by Hypercorn (one worker, SQLite in a temporary directory, cheap
argon2 parameters so that a login's database writes are not hidden behind its hash).
The rounds alternate between the trees in ABBA order, so that a drift in the machine's
load falls on both alike; every round's /protected figure is printed.

    git archive BASE | tar -x -C /tmp/before
    .venv/bin/python -m benchmarks.studies._sessions_cost --before /tmp/before --after .
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.servers import free_port
from benchmarks.tools import run_wrk

SECRET = "sessions-cost-" + "k" * 50
PASSWORD = "correct-horse-battery"


class Tree:
    """One source tree, served from a temporary instance directory."""

    def __init__(self, name: str, source: Path) -> None:
        self.name, self.source = name, source.resolve()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"sessions-cost-{name}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(self.source),
            "INSTANCE_PATH": str(self.tmp / "instance"),
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp / 'app.db'}",
            "JWT_SECRET_KEY": SECRET,
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_COST": "1024",
            "RATELIMIT_ENABLED": "false",
            "LOGIN_LOCKOUT_THRESHOLD": "100000",
            "SESSION_LIMIT": "0",
            "ACCESS_LOG": "false",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "1", "quart_app.asgi:app"],
            cwd=self.source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"{name}: the server did not start")
        self.http = httpx.Client(base_url=self.url, timeout=30)
        created = self.http.post("/register", json={"username": "bench", "password": PASSWORD})
        assert created.status_code == 201, created.text
        self.pair = self.login()

    def login(self) -> dict[str, str]:
        response = self.http.post("/login", json={"username": "bench", "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def timed_logins(self, n: int) -> float:
        """Median ms of ``n`` logins in a row."""
        times = []
        for _ in range(n):
            start = time.perf_counter()
            self.login()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    def timed_refreshes(self, n: int) -> float:
        """Median ms of ``n`` refreshes, each spending the previous one's token."""
        token, times = self.login()["refresh_token"], []
        for _ in range(n):
            start = time.perf_counter()
            response = self.http.post(
                "/token/refresh", headers={"Authorization": f"Bearer {token}"}
            )
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        return statistics.median(times) * 1000

    def protected_rps(self, seconds: float) -> float:
        auth = f"Bearer {self.pair['access_token']}"
        result = run_wrk(f"{self.url}/protected", [auth], 16, seconds, threads=1)
        assert result.non_2xx == 0, result
        return result.rps

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path("."))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    trees = [Tree("before", args.before), Tree("after", args.after)]
    results: dict[str, dict[str, list[float]]] = {
        t.name: {"rps": [], "login": [], "refresh": []} for t in trees
    }
    try:
        # ABBA order, round after round: a drift in the machine's load falls on both.
        for n in range(args.rounds):
            for tree in trees if n % 2 == 0 else trees[::-1]:
                results[tree.name]["rps"].append(tree.protected_rps(args.seconds))
        for n in range(args.rounds):
            for tree in trees if n % 2 == 0 else trees[::-1]:
                results[tree.name]["login"].append(tree.timed_logins(30))
                results[tree.name]["refresh"].append(tree.timed_refreshes(30))
    finally:
        for tree in trees:
            tree.stop()
    print(f"load average after the run: {os.getloadavg()} (medians of {args.rounds} rounds)")
    print("| tree | /protected req/s | login ms | refresh ms | every round's req/s |")
    print("|---|---|---|---|---|")
    for name, figures in results.items():
        rounds = ", ".join(f"{rps:.0f}" for rps in figures["rps"])
        print(
            f"| {name} | {statistics.median(figures['rps']):.0f} "
            f"| {statistics.median(figures['login']):.1f} "
            f"| {statistics.median(figures['refresh']):.1f} | {rounds} |"
        )


if __name__ == "__main__":
    main()
