"""benchmarks/micro.py's verification rows run, and what they measure holds: the cache
and the fast path each make verification cheaper than a bare PyJWT decode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_verify_cost_runs_and_ranks() -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.micro", "--quick"),
            *("--groups", "pyjwt,algorithms", "--hs-only"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {row["name"]: row["us"] for row in json.loads(result.stdout)}
    assert all(us > 0 for us in rows.values())
    on = rows["verify_jwt_in_request, HS256, cache on"]
    off = rows["verify_jwt_in_request, HS256, cache off"]
    assert on < off < rows["PyJWT jwt.decode"]
