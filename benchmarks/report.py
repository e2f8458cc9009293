"""Write REPORT.md from the runner's measurements (the PNG: ``benchmarks.chart``)."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "quart",
    "quart-schema",
    "hypercorn",
    "uvicorn",
    "granian",
    "uvloop",
    "httptools",
    "orjson",
    "pyjwt",
    "argon2-cffi",
    "sqlalchemy",
    "asyncpg",
    "redis",
    "flask",
    "flask-jwt-extended",
    "flask-sqlalchemy",
    "gunicorn",
    "fastapi",
    "starlette",
    "locust",
)


@dataclass
class Record:
    """One measured round of one variant of one scenario."""

    scenario: str
    target: str
    variant: str
    round: int
    tool: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_detail: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_us: float | None = None  # server CPU time per completed request


@dataclass
class Summary:
    """Medians over the rounds of one (scenario, target, variant)."""

    scenario: str
    target: str
    variant: str
    tool: str
    connections: int
    rounds: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rps_rounds: list[float]
    error_detail: dict[str, int]
    extra: dict[str, Any]
    cpu_us: float | None = None

    @property
    def name(self) -> str:
        return f"{self.target} {self.variant}".strip()


def summarise(records: list[Record]) -> list[Summary]:
    """Group by (scenario, target, variant), in first-seen order; medians over rounds."""
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for rec in records:
        groups.setdefault((rec.scenario, rec.target, rec.variant), []).append(rec)
    out = []
    for (scenario, target, variant), recs in groups.items():
        detail: dict[str, int] = {}
        for rec in recs:
            for key, count in rec.error_detail.items():
                detail[key] = detail.get(key, 0) + count
        extra: dict[str, Any] = {}
        for rec in recs:
            extra.update(rec.extra)
        cpu = [r.cpu_us for r in recs if r.cpu_us is not None]
        out.append(
            Summary(
                scenario=scenario,
                target=target,
                variant=variant,
                tool=recs[0].tool,
                connections=recs[0].connections,
                rounds=len(recs),
                rps=statistics.median(r.rps for r in recs),
                p50_ms=statistics.median(r.p50_ms for r in recs),
                p99_ms=statistics.median(r.p99_ms for r in recs),
                errors=sum(r.errors for r in recs),
                rps_rounds=[r.rps for r in recs],
                error_detail=detail,
                extra=extra,
                cpu_us=statistics.median(cpu) if cpu else None,
            )
        )
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(wrk: str | None) -> dict[str, str]:
    """Cores, CPU model, OS, Python and the versions of everything measured."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    versions = ", ".join(f"{name} {v}" for name in PACKAGES if (v := _version(name)) is not None)
    missing = [name for name in PACKAGES if _version(name) is None]
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": versions + (f" (not installed: {', '.join(missing)})" if missing else ""),
        "load tool": wrk or "wrk not installed: Python load generator (benchmarks/loadgen.py)",
        "load average at start": " ".join(f"{x:.2f}" for x in load),
        "scheduling": "servers and load generators in one session, so one scheduling group"
        f" (kernel.sched_autogroup_enabled={_autogroup()}); nice values apply across them",
    }


def _autogroup() -> str:
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return "n/a"


def _busy_warning(machine: dict[str, str]) -> str | None:
    """A warning when other work kept the cores busy before the run started.

    Only the load at the start says much about other jobs: by the end the run's own
    servers and load tools are in the average.
    """
    try:
        cores = int(machine["cores"])
        load = float(machine["load average at start"].split()[0])
    except (KeyError, ValueError, IndexError):
        return None
    if load <= 0.75 * cores:
        return None
    return (
        f"> **The machine was busy** (1-minute load average {load:.1f} on {cores} cores when"
        " the run started, from other jobs): req/s and latencies below are depressed and"
        " noisy; compare rows of this run with each other, and lean on CPU µs/req."
    )


def source_revision(repo: Path) -> str:
    """The commit measured, and whether quart_app/ or hypercorn.toml had local changes."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "quart_app", "hypercorn.toml")
    if not dirty:
        return f"{commit} (clean)"
    count = len(dirty.splitlines())
    return f"{commit} + {count} uncommitted change(s) in quart_app/ or hypercorn.toml"


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _errors(summary: Summary) -> str:
    if not summary.errors:
        return "0"
    detail = ", ".join(f"{k} {v}" for k, v in summary.error_detail.items() if v)
    return f"{summary.errors} ({detail})" if detail else str(summary.errors)


def write_report(
    out_dir: Path,
    *,
    machine: dict[str, str],
    scenarios: list[tuple[str, str, str]],
    summaries: list[Summary],
    micro: list[dict[str, Any]],
    checks: list[tuple[str, str, str]],
    notes: list[str],
    failures: list[str],
    settings: dict[str, str],
    chart_name: str,
    skipped: list[str] | None = None,
) -> Path:
    """Write REPORT.md; `scenarios` is (key, title, how) in run order; `skipped` names the
    variants that could not run on this machine, with the reason (not failures).
    """
    lines = ["# Benchmark report", ""]
    lines += [f"- **{key}**: {value}" for key, value in machine.items()]
    lines += [f"- **{key}**: {value}" for key, value in settings.items()]
    busy = _busy_warning(machine)
    if busy:
        lines += ["", busy]
    lines += ["", f"![chart]({chart_name})", ""]
    if failures:
        lines += ["## Failures", ""] + [f"- {msg}" for msg in failures] + [""]
    if skipped:
        lines += ["## Skipped", "", "Not measured on this machine (no rows below for them):", ""]
        lines += [f"- {msg}" for msg in skipped] + [""]
    lines += ["## Targets", "", "| target | figure | verdict |", "|---|---|---|"]
    lines += [f"| {what} | {figure} | {verdict} |" for what, figure, verdict in checks]
    lines += ["", "## Results", ""]
    lines += [
        "Medians over the rounds (A/B interleaved); req/s of completed responses; latency from",
        "the load tool's view; errors = connect/read/write errors + timeouts + non-2xx, summed.",
        "CPU µs/req: user+system CPU of all the server's processes per completed request; other",
        "jobs on the machine disturb it much less than they cut req/s.",
        "",
        "| scenario | target | variant | tool | conns | req/s | p50 ms | p99 ms | errors |"
        " CPU µs/req | req/s per round |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for key, _title, _how in scenarios:
        for s in (s for s in summaries if s.scenario == key):
            rounds = " / ".join(_fmt(r, 0) for r in s.rps_rounds)
            cpu = _fmt(s.cpu_us, 0) if s.cpu_us is not None else ""
            lines.append(
                f"| {key} | {s.target} | {s.variant} | {s.tool} | {s.connections} |"
                f" {_fmt(s.rps, 0)} | {_fmt(s.p50_ms)} | {_fmt(s.p99_ms)} | {_errors(s)} |"
                f" {cpu} | {rounds} |"
            )
        if key == "verify-micro":
            lines.append(f"| {key} | (in-process, see below) | | python | | | | | | | |")
    lines += ["", "## Scenarios", ""]
    lines += [f"- **{key}** ({title}): {how}" for key, title, how in scenarios]
    if micro:
        lines += ["", "## Verification and per-request cost, in-process (µs)", ""]
        lines += ["| what | µs | note |", "|---|---:|---|"]
        for row in micro:
            figure = _fmt(row["us"]) if row.get("us") is not None else "n/a"
            note = row.get("error") or row.get("note", "")
            lines.append(f"| {row['name']} | {figure} | {note} |")
    extras = [s for s in summaries if s.extra]
    if extras:
        lines += ["", "## Workers: memory and connection spread", ""]
        lines += ["| scenario | target | variant | detail |", "|---|---|---|---|"]
        for s in extras:
            detail = "; ".join(f"{k}: {v}" for k, v in s.extra.items())
            lines.append(f"| {s.scenario} | {s.target} | {s.variant} | {detail} |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
