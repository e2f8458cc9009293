"""Fixtures of the mail tests: a real SMTP server, and apps that send to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from quart import Quart

from tests.helpers.smtp_server import SmtpSink

LINKS = {
    "PASSWORD_RESET_URL": "https://app.example/reset?token={token}",
    "EMAIL_VERIFY_URL": "https://app.example/verify?token={token}",
}


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def mail_settings(smtp: SmtpSink) -> dict[str, Any]:
    return {
        "SMTP_URL": smtp.url,
        "MAIL_FROM": "Accounts <accounts@app.example>",
        "MAIL_POLL_INTERVAL": 0.2,
        "MAIL_SEND_TIMEOUT": 5.0,
        **LINKS,
    }


@pytest.fixture
async def mail_app(
    app_factory: Callable[..., Quart], mail_settings: dict[str, Any]
) -> AsyncIterator[Quart]:
    app = app_factory(**mail_settings)
    async with app.test_app():
        yield app
