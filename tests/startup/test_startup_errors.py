"""A server that cannot start says why in one line per problem, once, and exits non-zero.

Each case starts the real launcher (``python -m quart_app.serving``, what ``make run``
starts) with two workers and one bad setting, and reads everything it printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quart_app.startup.settings import BOOT_ERROR_EXIT
from tests.helpers.backend_servers import PostgresRun
from tests.helpers.live import ROOT, free_port
from tests.helpers.support import FAST_HASHING

pytestmark = pytest.mark.live

SERVE = [sys.executable, "-m", "quart_app.serving"]
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


def test_plain_hypercorn_does_not_exit_0_when_every_worker_fails(tmp_path: Path) -> None:
    """Hypercorn's master reports 0 whatever its workers exited with: the first worker
    to fail ends it with SIGUSR1 instead, a failure any service manager sees.
    """
    result = start(tmp_path, HYPERCORN, JWT_SECRET_KEY="short")
    assert result.returncode == -10, result.returncode  # killed by SIGUSR1, not 0
    [line] = error_lines(result)
    assert line.startswith("Error: JWT_SECRET_KEY is 5 bytes")


def test_a_missing_key_file_is_one_line_before_any_worker_starts(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key.pem"
    result = start(tmp_path, SERVE, JWT_ALGORITHM="RS256", JWT_PRIVATE_KEY_FILE=str(missing))
    assert result.returncode == BOOT_ERROR_EXIT
    [line] = error_lines(result)
    assert line == (
        f"Error: JWT_PRIVATE_KEY_FILE {missing}: no such file: point JWT_PRIVATE_KEY_FILE"
        " at the PEM file, or unset it"
    )
    assert "worker" not in result.stderr  # said by the master: no worker started


def test_a_stale_metrics_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_4242.db").write_bytes(b"\0" * 16)
    result = start(tmp_path, SERVE, PROMETHEUS_MULTIPROC_DIR=str(folder))
    assert result.returncode == BOOT_ERROR_EXIT
    [line] = error_lines(result)
    assert line.startswith(
        f"Error: PROMETHEUS_MULTIPROC_DIR {folder} holds 1 file(s) of an earlier run"
    )


def serve_with(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m quart_app.serving`` with this command line (what make run passes)."""
    environ = {**os.environ, "INSTANCE_PATH": str(tmp_path / "instance")}
    return subprocess.run(
        [*SERVE, "--config", str(ROOT / "hypercorn.toml"), *args, "quart_app.asgi:app"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--bind", "127.0.0.1:abc"],
            "Error: --bind 127.0.0.1:abc (HOST, PORT): the port must be a number from 0 to"
            " 65535, not 'abc'",
        ),
        (
            ["--workers", "abc"],
            "Error: --workers (WORKERS) must be a whole number of at least 1, not 'abc'",
        ),
        (
            ["--certfile", "cert.pem"],
            "Error: --certfile and --keyfile (CERTFILE, KEYFILE) must be given together",
        ),
    ],
)
def test_a_bad_command_line_is_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    result = serve_with(tmp_path, *args)
    assert result.returncode == BOOT_ERROR_EXIT
    assert (result.stdout + result.stderr).strip() == expected


def test_make_run_passes_certfile_without_keyfile_as_given(tmp_path: Path) -> None:
    """`make run CERTFILE=x` once swallowed the app's name as the key file."""
    plan = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "run", "CERTFILE=cert.pem", "PORT=8000"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--certfile cert.pem" in plan and "--keyfile" not in plan
