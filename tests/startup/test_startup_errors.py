"""A server that cannot start says why in one line per problem, once, and exits non-zero.

Each case starts the real launcher (``python -m quart_app.serve``, what ``make run``
starts) with two workers and one bad setting, and reads everything it printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from backend_servers import PostgresRun
from live import ROOT, free_port
from support import FAST_HASHING

from quart_app.settings import BOOT_ERROR_EXIT

pytestmark = pytest.mark.live

SERVE = [sys.executable, "-m", "quart_app.serve"]
HYPERCORN = [sys.executable, "-m", "hypercorn"]


def start(tmp_path: Path, launcher: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run a two-worker server with ``env``; it must exit by itself (generous bound)."""
    environ = {**os.environ, **{k: str(v) for k, v in FAST_HASHING.items()}}
    environ.pop("JWT_SECRET_KEY", None)
    environ.update({"INSTANCE_PATH": str(tmp_path / "instance"), "LOG_LEVEL": "WARNING", **env})
    args = [*launcher, "--config", str(ROOT / "hypercorn.toml")]
    args += ["--bind", f"127.0.0.1:{free_port()}", "--workers", "2", "quart_app.asgi:app"]
    return subprocess.run(
        args, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``Error:`` lines; besides them at most the supervisor's one line per worker."""
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(lines) - len(errors) <= 2, lines
    return errors


CASES = {
    "short secret": (
        {"JWT_SECRET_KEY": "short"},
        "JWT_SECRET_KEY is 5 bytes, HMAC needs at least 32",
    ),
    "garbage url": ({"DATABASE_URL": "garbage"}, "DATABASE_URL 'garbage' is not a database URL"),
    "unknown scheme": (
        {"DATABASE_URL": "mongodb://db.example/orders"},
        "DATABASE_URL scheme 'mongodb' is not supported",
    ),
    "not a number": (
        {"JWT_ACCESS_TOKEN_EXPIRES": "soon"},
        "JWT_ACCESS_TOKEN_EXPIRES must be a number (int), not 'soon'",
    ),
    "missing metrics folder": (
        {"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"},
        "PROMETHEUS_MULTIPROC_DIR /nonexistent/metrics is not a directory",
    ),
    "bad trusted proxy": (
        {"TRUSTED_PROXY_HOPS": "1", "TRUSTED_PROXIES": "10.0.0.0/8,proxy.example"},
        "TRUSTED_PROXIES entry 'proxy.example' is not an IP address or CIDR network",
    ),
    "metrics without a token": (
        {"METRICS_ENABLED": "true"},
        "METRICS_ENABLED is true but METRICS_TOKEN is unset",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_setting_is_one_line_and_exit_3(tmp_path: Path, case: str) -> None:
    env, expected = CASES[case]
    result = start(tmp_path, SERVE, **env)
    assert result.returncode == BOOT_ERROR_EXIT
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: {expected}")


def test_unwritable_instance_path(tmp_path: Path) -> None:
    # Root ignores permission bits, so the folder is one that cannot exist: below a file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = start(tmp_path, SERVE, INSTANCE_PATH=str(blocker / "instance"))
    assert result.returncode == BOOT_ERROR_EXIT
    [line] = error_lines(result)
    assert line.startswith("Error: INSTANCE_PATH: cannot write the SQLite database in")
    assert "Not a directory" in line


def test_every_problem_gets_its_line(tmp_path: Path) -> None:
    result = start(tmp_path, SERVE, JWT_SECRET_KEY="short", RATELIMIT_ENABLED="maybe")
    assert result.returncode == BOOT_ERROR_EXIT
    lines = error_lines(result)
    assert len(lines) == 2, lines
    assert any("RATELIMIT_ENABLED must be true or false" in line for line in lines)
    assert any("JWT_SECRET_KEY is 5 bytes" in line for line in lines)


def test_plain_hypercorn_says_it_once_too(tmp_path: Path) -> None:
    """Plain hypercorn imports the app in each worker: the line still appears once."""
    result = start(tmp_path, HYPERCORN, JWT_SECRET_KEY="short")
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: JWT_SECRET_KEY is 5 bytes")


def test_postgres_database_that_does_not_exist(
    tmp_path: Path, postgres_server: PostgresRun
) -> None:
    missing = f"{postgres_server.name}_missing"
    url = postgres_server.url.replace("+asyncpg", "").rsplit("/", 1)[0] + f"/{missing}"
    result = start(tmp_path, SERVE, DATABASE_URL=url)
    assert result.returncode == BOOT_ERROR_EXIT
    [line] = error_lines(result)
    assert f"database '{missing}' does not exist: create it (createdb" in line, line
