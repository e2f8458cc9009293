"""The benchmark suite must not rot: run it briefly and check what it writes.

Slow on purpose (about a minute): ``python -m benchmarks.run --smoke`` starts the Flask
baseline, quart_app under Hypercorn and uvicorn and the FastAPI peer on loopback ports and
runs every scenario for about a second. No speed is asserted; figures from a second-long
run on a shared machine mean nothing. Marked ``live`` because it starts real servers.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 240
#: The scenarios of issue 5, in the runner's order.
SCENARIOS = [
    "protected-64",
    "protected-1000",
    "auth-overhead",
    "uvicorn-peer",
    "login-storm",
    "locust",
    "verify-micro",
]


def _png_text(data: bytes) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG (matplotlib writes its metadata there)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, texts = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = zlib.decompress(value[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            _flags, rest = rest[:2], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("utf-8")
        pos += 12 + length
    return texts


@pytest.mark.live
def test_runner_smoke_writes_report_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"runner failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "- **cores**:" in report and "- **cpu**:" in report and "- **python**:" in report
    assert "## Failures" not in report
    for key in SCENARIOS:
        assert f"| {key} |" in report, f"scenario {key} missing from the results table"
    for target in ("flask-gunicorn", "quart-hypercorn", "quart-uvicorn", "fastapi-uvicorn"):
        assert f"| {target} |" in report
    assert "quart_app verify_jwt_in_request" in report

    texts = _png_text((out / "chart.png").read_bytes())
    charted = texts.get("Description", "").removeprefix("scenarios: ").split(", ")
    assert charted == SCENARIOS
    # A progress line per round, so a long run shows where it is.
    assert "protected-64 round 1/1 quart-hypercorn" in proc.stdout


def test_locust_lists_the_user_classes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "benchmarks", "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = {line.strip() for line in proc.stdout.splitlines()}
    assert {"ProtectedUser", "LoginUser", "MixedUser", "LoginStorm"} <= listed
