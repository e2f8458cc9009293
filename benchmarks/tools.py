"""The load tools behind the runner: wrk when installed, else `benchmarks.loadgen`; Locust.

Each returns a `LoadResult` so the report can put figures from different tools side by
side, naming the tool. Every tool runs as a child process with a hard time limit.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from benchmarks.loadgen import LoadResult, RequestSpec

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk_report.lua"


def wrk_path() -> str | None:
    """The wrk binary, or None (then the runner falls back to the Python load generator)."""
    return shutil.which("wrk")


def wrk_version() -> str | None:
    path = wrk_path()
    if path is None:
        return None
    proc = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0] if first else "wrk"


def raise_nofile() -> None:
    """Let this process and its children (the load tools) open thousands of sockets."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run_wrk(
    url: str,
    auth_values: list[str],
    connections: int,
    seconds: float,
    *,
    threads: int = 2,
    timeout_s: float = 10.0,
) -> LoadResult:
    """GET `url` with wrk, rotating the given Authorization header values over requests."""
    path = wrk_path()
    if path is None:
        raise RuntimeError("wrk is not installed")
    duration = max(1, round(seconds))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(auth_values) + "\n")
        values_file = fh.name
    try:
        argv = [path, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s"]
        argv += [f"--timeout={timeout_s:g}s", "-s", str(WRK_SCRIPT), url]
        argv += ["--", values_file if auth_values else "-"]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration + timeout_s + 60,
            check=False,
        )
    finally:
        os.unlink(values_file)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    data = json.loads(line.removeprefix("WRKJSON "))
    requests = int(data["requests"])
    elapsed = data["duration_us"] / 1e6 or float(duration)
    non_2xx = int(data["status"])
    return LoadResult(
        tool="wrk",
        connections=connections,
        duration_s=elapsed,
        requests=requests,
        ok=requests - non_2xx,
        non_2xx=non_2xx,
        connect_errors=int(data["connect"]),
        read_errors=int(data["read"]) + int(data["write"]),
        timeouts=int(data["timeout"]),
        rps=requests / elapsed,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={},
    )


def run_loadgen(
    url: str,
    specs: list[RequestSpec],
    connections: int,
    seconds: float,
    *,
    processes: int = 2,
    rate: float | None = None,
    timeout_s: float = 10.0,
) -> LoadResult:
    """Run `benchmarks.loadgen` in a child process and return what it measured."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump([asdict(spec) for spec in specs], fh)
        spec_file = fh.name
    try:
        argv = [sys.executable, "-m", "benchmarks.loadgen", "--url", url]
        argv += ["-c", str(connections), "-d", f"{seconds:g}", "-p", str(processes)]
        argv += ["--timeout", f"{timeout_s:g}", "--spec", spec_file]
        if rate:
            argv += ["--rate", f"{rate:g}"]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=seconds + timeout_s + 90,
            check=False,
            cwd=HERE.parent,
        )
    finally:
        os.unlink(spec_file)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(lines[-1])
    return LoadResult(**data)


def run_get(
    tool: str,
    url: str,
    auth_values: list[str],
    connections: int,
    seconds: float,
) -> LoadResult:
    """GET `url` with `tool` ("wrk" or "python-loadgen"), one auth value per request."""
    if tool == "wrk":
        return run_wrk(url, auth_values, connections, seconds)
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    specs = [
        RequestSpec(path=path, headers={"Authorization": value} if value else {})
        for value in (auth_values or [""])
    ]
    return run_loadgen(url, specs, connections, seconds)


def run_locust(
    base_url: str,
    user_class: str,
    users: int,
    seconds: float,
    workdir: Path,
) -> tuple[LoadResult, dict[str, int]]:
    """Run Locust headless with one user class; the /protected row, and failures by msg."""
    prefix = workdir / f"locust-{user_class}"
    duration = max(2, round(seconds))
    argv = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), user_class]
    argv += ["--headless", "-u", str(users), "-r", str(users), "-t", f"{duration}s"]
    argv += ["--host", base_url, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    argv += ["--stop-timeout", "5", "--csv-full-history"]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + 90,
        check=False,
        cwd=HERE.parent,
    )
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        raise RuntimeError(f"locust failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with open(stats_file, newline="", encoding="utf-8") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    failures: dict[str, int] = {}
    failures_file = Path(f"{prefix}_failures.csv")
    if failures_file.exists():
        with open(failures_file, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                key = f"{row['Method']} {row['Name']}: {row['Error']}"
                failures[key] = int(row["Occurrences"])
    row = rows.get("/protected") or rows["Aggregated"]
    total = rows["Aggregated"]
    requests = int(row["Request Count"])
    failed = int(total["Failure Count"])
    rps, p50, p90, p99 = (float(row[k]) for k in ("Requests/s", "50%", "90%", "99%"))
    steady = _locust_steady_state(Path(f"{prefix}_stats_history.csv"), row["Name"])
    if steady is not None:
        rps, p50, p90, p99 = steady
    return (
        LoadResult(
            tool="locust",
            connections=users,
            duration_s=float(duration),
            requests=requests,
            ok=requests - int(row["Failure Count"]),
            non_2xx=failed,
            connect_errors=0,
            read_errors=0,
            timeouts=0,
            rps=rps,
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            max_ms=float(row["Max Response Time"]),
            statuses={},
        ),
        failures,
    )


def _locust_steady_state(history: Path, name: str) -> tuple[float, float, float, float] | None:
    """req/s and median current p50/p90/p99 of `name` over the second half of the run.

    Every Locust user registers and logs in first (password hashing, seconds on the Flask
    baseline), so whole-run averages mostly measure that warm-up.
    """
    if not history.exists():
        return None
    with open(history, newline="", encoding="utf-8") as fh:
        samples = [r for r in csv.DictReader(fh) if r["Name"] == name]
    if len(samples) < 4:
        return None
    half = samples[len(samples) // 2 :]
    first, last = half[0], half[-1]
    elapsed = int(last["Timestamp"]) - int(first["Timestamp"])
    if elapsed <= 0:
        return None
    count = int(last["Total Request Count"]) - int(first["Total Request Count"])

    def median_of(key: str) -> float:
        values = sorted(float(r[key]) for r in half if r[key] not in ("", "N/A"))
        return values[len(values) // 2] if values else 0.0

    return count / elapsed, median_of("50%"), median_of("90%"), median_of("99%")
