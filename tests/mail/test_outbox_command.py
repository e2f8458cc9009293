"""``quart-app outbox`` lists pending, failing and failed mail."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import update

from quart_app import create_app
from quart_app.cli import main
from quart_app.jwt import get_manager
from quart_app.mail import queue_mail
from quart_app.mail.outbox import OutboxStore
from quart_app.mail.sender import mail_sender
from quart_app.services import services
from quart_app.store.models import OutboxMail
from tests.helpers.clock import FrozenClock
from tests.helpers.smtp_server import SmtpSink
from tests.helpers.support import FAST_HASHING, SECRET, make_config


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "JWT_SECRET_KEY": SECRET,
        **{key: str(value) for key, value in FAST_HASHING.items()},
        **extra,
    }


async def cli(args: list[str], env: dict[str, str]) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env)


async def test_outbox_lists_pending_and_failing_mail(tmp_path: Path) -> None:
    down = SmtpSink()  # never started: every attempt is refused at connect
    env = cli_env(tmp_path, SMTP_URL=down.url, MAIL_POLL_INTERVAL="0.2")
    empty = await cli(["outbox"], env)
    assert (empty.exit_code, empty.stdout) == (
        0,
        "outbox: 0 pending (0 failing), 0 failed, 0 sent\n",
    )

    app = create_app(make_config(tmp_path, SMTP_URL=down.url, MAIL_POLL_INTERVAL=0.2))
    async with app.test_app():
        db = services(app).db
        async with db.session() as session, session.begin():
            for recipient in ("one@example.com", "two@example.com"):
                context = {"kind": "x", "what": "w", "username": "u", "when": "now", "details": {}}
                await queue_mail(session, recipient=recipient, template="notice", context=context)
        mail_sender(app).wake()
        outbox = OutboxStore(db)
        deadline = time.monotonic() + 20
        while (await outbox.counts())["failing"] < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

    result = await cli(["outbox"], env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "outbox: 2 pending (2 failing), 0 failed, 0 sent"
    assert lines[1].split()[:3] == ["id", "state", "attempts"]
    assert [line.split()[1] for line in lines[2:]] == ["failing", "failing"]
    assert "one@example.com" in lines[2] and "two@example.com" in lines[3]
    assert "Connect" in lines[2]  # the last error, e.g. SMTPConnectError


async def test_prune_deletes_expired_tokens_and_old_sent_mail(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    app = create_app(make_config(tmp_path, MAIL_POLL_INTERVAL=0.2, EMAIL_VERIFY_TTL=1))
    # The app's clock 2 s behind: the verification token it issues (1 s) has expired by
    # the real clock the prune command reads.
    get_manager(app).clock = FrozenClock(time.time() - 2)
    async with app.test_app():
        response = await app.test_client().post(
            "/register",
            json={"username": "alice", "password": "correct-horse", "email": "a@example.com"},
        )
        assert response.status_code == 201
        outbox = OutboxStore(services(app).db)
        deadline = time.monotonic() + 20
        while (await outbox.counts())["sent"] < 1:  # written as an .eml file
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        async with services(app).db.session() as session, session.begin():
            await session.execute(update(OutboxMail).values(sent_at=time.time() - 91 * 86400))
    result = await cli(["prune"], env)
    assert result.exit_code == 0, result.output
    assert "pruned 1 expired recovery tokens and 1 sent mails older than" in result.stdout
    again = await cli(["prune"], env)
    assert "recovery tokens" not in again.stdout
