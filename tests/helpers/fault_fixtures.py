"""Fixtures of the fault-injection tests: the run's PostgreSQL behind a fault proxy, and
a small filesystem of their own for SQLite.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.helpers.backend_servers import PostgresRun, run, unavailable
from tests.helpers.fault_support import mount
from tests.helpers.faultproxy import FaultProxy


@pytest.fixture
def postgres(postgres_server: PostgresRun) -> PostgresRun:
    run(postgres_server.reset())
    return postgres_server


@pytest.fixture
def pg_proxy(postgres: PostgresRun) -> Iterator[tuple[FaultProxy, str]]:
    """A fault proxy in front of the run's database, and the database URL through it."""
    url = make_url(postgres.url)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the database alone (the instance directory stays outside)."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        mount("-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as error:
        unavailable("a tmpfs mount (needs root or CAP_SYS_ADMIN)", error)
    try:
        yield where
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            mount("-o", "remount,rw", str(where))
        subprocess.run(["umount", "-l", str(where)], check=False)
