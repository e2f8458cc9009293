"""/metrics is never published by accident: enabled without a token, start-up refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from quart_app import create_app
from quart_app.startup.settings import SettingsError
from tests.helpers.support import bearer, make_config


def test_metrics_without_a_token_refuse_to_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        create_app(make_config(tmp_path, METRICS_ENABLED=True))
    (line,) = str(raised.value).splitlines()
    assert line.startswith("METRICS_ENABLED is true but METRICS_TOKEN is unset")
    assert "METRICS_PUBLIC=true" in line


async def test_metrics_public_must_be_said(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, METRICS_ENABLED=True, METRICS_PUBLIC=True))
    async with app.test_app():
        assert (await app.test_client().get("/metrics")).status_code == 200


async def test_metrics_behind_the_token(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, METRICS_ENABLED=True, METRICS_TOKEN="scrape-me"))
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=bearer("scrape-me"))).status_code == 200


def test_metrics_off_need_nothing(tmp_path: Path) -> None:
    create_app(make_config(tmp_path, METRICS_ENABLED=False))
