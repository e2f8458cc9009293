"""What restarts cost under load: requests left without an answer per SIGTERM and per
SIGHUP, and how long a worker killed with SIGKILL takes to be replaced.

``python -m benchmarks.studies._restarts`` runs each scenario against plain ``hypercorn`` (what
``make run`` started before the supervisor) and ``python -m quart_app.serving`` (what it
starts now), both with hypercorn.toml and 2 workers, under 30 keep-alive connections of
the recording client (benchmarks/studies/_recording.py) asking GET /protected. Prints a Markdown
table; ``--json`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.servers import Server, target_specs
from benchmarks.studies._recording import Recording, record

TARGETS = ("quart-hypercorn", "quart-serve")
CREDENTIALS = {"username": "bench", "password": "correct-horse-battery"}
RUNNING = re.compile(r"\[(\d+)\] \[INFO\] Running on")


def _post_json(url: str, body: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def _token(server: Server) -> str:
    _post_json(server.base_url + "/register", CREDENTIALS)
    return str(_post_json(server.base_url + "/login", CREDENTIALS)["access_token"])


def _serving_pids(server: Server) -> set[int]:
    """Worker pids that logged "Running on" (Hypercorn logs it once serving)."""
    return {int(pid) for pid in RUNNING.findall(server.log_path.read_text(errors="replace"))}


async def _under_load(
    server: Server, token: str, action: Callable[[], Any], connections: int
) -> tuple[Recording, Any]:
    """Run ``action`` (in a thread) while the recording client keeps the server busy."""
    stop = asyncio.Event()
    load = asyncio.create_task(
        record(
            "127.0.0.1",
            server.port,
            "/protected",
            stop,
            connections=connections,
            headers={"Authorization": f"Bearer {token}"},
        )
    )
    await asyncio.sleep(1.0)
    result = await asyncio.to_thread(action)
    await asyncio.sleep(0.5)
    stop.set()
    return await load, result


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> float | None:
    """Seconds until ``predicate()`` holds (polled every 5 ms), or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.005)
    return None


@contextlib.contextmanager
def _serving(key: str, workdir: Path) -> Iterator[tuple[Server, str, subprocess.Popen[bytes]]]:
    """A started server of target ``key``, a token for it and its master process."""
    server = Server(target_specs()[key], workdir, secret="s" * 64)
    server.start()
    try:
        assert server.proc is not None
        yield server, _token(server), server.proc
    finally:
        server.stop()


def sigterm_round(key: str, workdir: Path, connections: int) -> dict[str, Any]:
    with _serving(key, workdir) as (server, token, proc):

        def stop() -> float | None:
            proc.send_signal(signal.SIGTERM)
            return _wait(lambda: proc.poll() is not None)

        recording, seconds = asyncio.run(_under_load(server, token, stop, connections))
    return {**recording.outcomes, "announced": recording.closes_announced, "stop_s": seconds}


def sighup_round(key: str, workdir: Path, connections: int) -> dict[str, Any]:
    with _serving(key, workdir) as (server, token, proc):
        _master, old = server.pids()

        def reload() -> float | None:
            before = _serving_pids(server)
            proc.send_signal(signal.SIGHUP)

            def done() -> bool:
                _master, now = server.pids()
                fresh = _serving_pids(server) - before
                return len(fresh) >= len(old) and not set(old) & set(now)

            return _wait(done, timeout=180)

        recording, seconds = asyncio.run(_under_load(server, token, reload, connections))
    failed = sum(recording.outcomes[k] for k in ("lost", "reset_new", "refused", "non_2xx"))
    return {**recording.outcomes, "failed": failed, "reload_s": seconds}


def kill_round(key: str, workdir: Path, connections: int) -> dict[str, Any]:
    with _serving(key, workdir) as (server, token, _proc):
        _master, workers = server.pids()
        killed_at = 0.0

        def kill() -> float | None:
            nonlocal killed_at
            before = _serving_pids(server)
            killed_at = time.monotonic()
            os.kill(workers[0], signal.SIGKILL)
            return _wait(lambda: bool(_serving_pids(server) - before), timeout=120)

        recording, recovery = asyncio.run(_under_load(server, token, kill, connections))
        gap = recording.largest_gap(killed_at, killed_at + 5)
    return {**recording.outcomes, "recovery_s": recovery, "largest_gap_s": round(gap, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigterms", type=int, default=10, help="SIGTERM rounds per server")
    parser.add_argument("--reloads", type=int, default=3, help="SIGHUP rounds per server")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL rounds per server")
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-restarts-") as tmp:
        for key in args.targets:
            rounds = results.setdefault(key, {})
            for name, count, scenario in (
                ("sigterm", args.sigterms, sigterm_round),
                ("sighup", args.reloads, sighup_round),
                ("kill", args.kills, kill_round),
            ):
                for index in range(count):
                    workdir = Path(tmp) / f"{key}-{name}-{index}"
                    try:
                        result = scenario(key, workdir, args.connections)
                    except Exception as error:  # a round that could not run is said, not hidden
                        result = {"error": f"{type(error).__name__}: {error}"[:300]}
                    print(json.dumps({"server": key, "scenario": name, **result}), file=sys.stderr)
                    rounds.setdefault(name, []).append(result)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(report(results))


def _sum(rounds: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get(key) or 0) for r in rounds)


def report(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = [
        "| server | SIGTERM: lost per round (rounds) | SIGTERM: answered | SIGHUP: failed"
        " per reload | SIGKILL of a worker: replacement serving after | longest gap |",
        "|---|---|---|---|---|---|",
    ]
    for key, rounds in results.items():
        term = rounds.get("sigterm", [])
        hup = rounds.get("sighup", [])
        kill = rounds.get("kill", [])
        lost = [int(r.get("lost", 0)) for r in term]
        failed = [int(r.get("failed", 0)) for r in hup]
        recovery = [r.get("recovery_s") for r in kill]
        shown = ", ".join("none" if s is None else f"{s:.2f} s" for s in recovery)
        errors = sum(1 for r in [*term, *hup, *kill] if "error" in r)
        gaps = ", ".join(f"{r.get('largest_gap_s', 0):.2f} s" for r in kill)
        lines.append(
            f"| {key} | {', '.join(map(str, lost))} ({len(term)}) | {_sum(term, 'ok')} |"
            f" {', '.join(map(str, failed))} | {shown} | {gaps} |"
            + (f" {errors} round(s) could not run |" if errors else "")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
