"""Small things an operator meets: an outage's WARNINGs are rate-limited, and the SQLite
database (every password hash) is created readable by its owner only.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from quart_app import errors
from quart_app.app import create_app
from tests.helpers.support import make_config


async def test_an_outage_logs_one_warning_per_interval_not_one_per_request(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(errors, "_warned", {})
    app = create_app(make_config(Path("/nonexistent")))
    async with app.app_context():
        with caplog.at_level(logging.WARNING, logger=errors.log.name):
            for _ in range(50):
                response = errors.unavailable("timeout", TimeoutError("no answer"))
                assert response.status_code == 503
                assert response.headers["Retry-After"] == "5"
            warnings = [r for r in caplog.records if r.name == errors.log.name]
            assert len(warnings) == 1
            # The next one, once the interval is over, says how many it stood for.
            monkeypatch.setattr(errors, "WARNING_INTERVAL", 0.0)
            errors.unavailable("timeout", TimeoutError("no answer"))
    last = [r for r in caplog.records if r.name == errors.log.name][-1].getMessage()
    assert last.endswith("(and 49 more 503s like it since the last warning)"), last


async def test_the_sqlite_database_is_created_0600_in_a_0700_folder(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    database = instance / "app.db"
    config = make_config(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    app = create_app(config)
    async with app.test_app():
        assert (await app.test_client().get("/healthz")).status_code == 200
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700


def test_init_db_creates_the_sqlite_database_0600(tmp_path: Path) -> None:
    from quart_app.store import migrate

    database = tmp_path / "new" / "app.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{database}")
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
