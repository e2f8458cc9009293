"""The outbox and its sender against a real SMTP server: delivery, an outage, two
senders at once, permanent refusal, SMTP authentication, and the .eml fallback."""

from __future__ import annotations

import asyncio
import email
import ssl
import time
from collections.abc import Callable
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app.mail import queue_mail
from quart_app.mail.outbox import OutboxStore
from quart_app.mail.sender import MailSender, mail_sender
from quart_app.services import services
from quart_app.serving.devcert import write_dev_cert
from quart_app.startup.settings import SettingsError
from quart_app.store import Database
from tests.helpers.smtp_server import SmtpSink, text_of


async def queue(app: Quart, count: int, recipient: str = "bob@example.com") -> list[str]:
    ids = []
    async with services(app).db.session() as session, session.begin():
        for n in range(count):
            ids.append(
                await queue_mail(
                    session,
                    recipient=recipient,
                    template="notice",
                    context={
                        "kind": "password_changed",
                        "what": f"Mail number {n}.",
                        "username": "bob",
                        "when": "now",
                        "details": {},
                    },
                )
            )
    mail_sender(app).wake()
    return ids


async def test_a_queued_mail_is_sent_once_with_its_message_id(
    mail_app: Quart, smtp: SmtpSink
) -> None:
    [unique] = await queue(mail_app, 1)
    [mail] = await smtp.wait_for(1)
    assert mail["Message-ID"] == f"<{unique}@app.example>"
    assert mail["To"] == "bob@example.com"
    assert "Mail number 0." in text_of(mail)
    assert smtp.envelopes == [("accounts@app.example", ["bob@example.com"])]
    outbox = OutboxStore(services(mail_app).db)
    deadline = time.monotonic() + 10  # the sender marks it just after the server took it
    while (counts := await outbox.counts())["sent"] < 1:
        assert time.monotonic() < deadline, counts
        await asyncio.sleep(0.05)
    assert counts["pending"] == 0


async def test_a_rolled_back_transaction_sends_nothing(mail_app: Quart, smtp: SmtpSink) -> None:
    with pytest.raises(RuntimeError):
        async with services(mail_app).db.session() as session, session.begin():
            await queue_mail(session, recipient="x@example.com", template="notice", context={})
            raise RuntimeError("the change failed")
    await queue(mail_app, 1)  # a later mail goes out, the rolled-back one never
    await smtp.wait_for(1)
    await asyncio.sleep(0.5)
    assert [m["To"] for m in smtp.messages] == ["bob@example.com"]


async def test_an_smtp_outage_delays_mail_and_loses_none(mail_app: Quart, smtp: SmtpSink) -> None:
    smtp.stop()
    ids = await queue(mail_app, 3)
    outbox = OutboxStore(services(mail_app).db)
    deadline = time.monotonic() + 20
    while (await outbox.counts())["failing"] < 3:
        assert time.monotonic() < deadline, await outbox.counts()
        await asyncio.sleep(0.1)
    [status, *_] = await outbox.unsent()
    assert status.state == "pending" and status.attempts == 1
    assert status.last_error and "Connect" in status.last_error
    smtp.start()  # the same port again: the retry (about 5 s later) delivers
    mails = await smtp.wait_for(3, timeout=30)
    assert sorted(m["Message-ID"] for m in mails) == sorted(f"<{i}@app.example>" for i in ids)
    await asyncio.sleep(1)
    assert smtp.count() == 3
    assert (await outbox.counts())["sent"] == 3


async def test_two_senders_on_one_outbox_send_each_mail_once(
    app_factory: Callable[..., Quart], mail_settings: dict[str, Any], smtp: SmtpSink
) -> None:
    # Two workers' senders: separate engines on one database, claiming at the same time.
    app = app_factory(**mail_settings)
    async with app.test_app():
        await mail_sender(app).stop()  # only the two below send
        ids = await queue(app, 40)
        other = Database(str(app.config["DATABASE_URL"]))
        await other.open()
        try:
            senders = [
                MailSender(services(app).db, app.config, name="one"),
                MailSender(other, app.config, name="two"),
            ]

            async def drain(sender: MailSender) -> int:
                sent = 0
                while await sender.send_one():
                    sent += 1
                return sent

            shares = await asyncio.gather(*(drain(s) for s in senders))
        finally:
            await other.close()
    assert sum(shares) == 40
    assert all(share > 0 for share in shares), shares  # both took part
    received = sorted(m["Message-ID"] for m in smtp.messages)
    assert received == sorted(f"<{i}@app.example>" for i in ids)


class RefusingSink(SmtpSink):
    """Refuses every recipient for good (550)."""

    def start(self) -> None:
        super().start()
        assert self.controller is not None
        handler = self.controller.handler

        async def handle_RCPT(
            server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            return "550 5.1.1 No such user"

        handler.handle_RCPT = handle_RCPT


async def test_a_mail_refused_for_good_is_kept_as_failed(
    app_factory: Callable[..., Quart], mail_settings: dict[str, Any]
) -> None:
    sink = RefusingSink()
    sink.start()
    try:
        app = app_factory(**{**mail_settings, "SMTP_URL": sink.url})
        async with app.test_app():
            await queue(app, 1)
            outbox = OutboxStore(services(app).db)
            deadline = time.monotonic() + 20
            while (await outbox.counts())["failed"] < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            [status] = await outbox.unsent()
            assert status.state == "failed" and "550" in (status.last_error or "")
    finally:
        sink.stop()
    assert sink.count() == 0


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_authentication(
    app_factory: Callable[..., Quart], mail_settings: dict[str, Any]
) -> None:
    sink = SmtpSink(auth=("mailer", "s3cret:/@"))
    sink.start()
    try:
        url = f"smtp://mailer:s3cret%3A%2F%40@127.0.0.1:{sink.port}"
        app = app_factory(**{**mail_settings, "SMTP_URL": url})
        async with app.test_app():
            await queue(app, 1)
            await sink.wait_for(1)
    finally:
        sink.stop()


async def test_without_smtp_mail_is_written_as_eml_files(
    app_factory: Callable[..., Quart], tmp_path: Path
) -> None:
    app = app_factory(MAIL_POLL_INTERVAL=0.2)
    async with app.test_app():
        [unique] = await queue(app, 1)
        folder = Path(app.config["INSTANCE_PATH"]) / "outbox"
        deadline = time.monotonic() + 20
        while not list(folder.glob("*.eml")):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    [path] = list(folder.glob("*.eml"))
    assert path.stat().st_mode & 0o077 == 0
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert message["Message-ID"] == f"<{unique}@localhost>"
    assert message["To"] == "bob@example.com"


async def test_deployer_templates_replace_the_built_in_ones(
    app_factory: Callable[..., Quart],
    mail_settings: dict[str, Any],
    smtp: SmtpSink,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "notice.txt").write_text("Subject: Heads up, {{ username }}\n\n{{ what }} (ours)\n")
    app = app_factory(**mail_settings, MAIL_TEMPLATES_DIR=str(folder))
    async with app.test_app():
        await queue(app, 1)
        [mail] = await smtp.wait_for(1)
    assert mail["Subject"] == "Heads up, bob"
    assert text_of(mail).strip() == "Mail number 0. (ours)"
    assert mail.get_body(preferencelist=("html",)) is not None  # the built-in HTML stays


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SMTP_URL", "http://mail.example.com", "SMTP_URL must look like"),
        ("SMTP_URL", "smtp://host:notaport", "SMTP_URL is not a URL"),
        ("MAIL_FROM", "nobody", "MAIL_FROM must be an address"),
        ("PASSWORD_RESET_URL", "https://app.example/reset", "PASSWORD_RESET_URL must be"),
        ("EMAIL_VERIFY_URL", "javascript:{token}", "EMAIL_VERIFY_URL must be"),
        ("MAIL_TEMPLATES_DIR", "/nonexistent/templates", "MAIL_TEMPLATES_DIR"),
        ("PASSWORD_RESET_TTL", 0, "PASSWORD_RESET_TTL must be at least 1"),
    ],
)
def test_bad_mail_settings_stop_start_up_with_one_line(
    app_factory: Callable[..., Quart], name: str, value: Any, words: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        app_factory(**{name: value})
    assert refused.value.problems == [next(p for p in refused.value.problems if words in p)]
    assert "\n" not in str(refused.value)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
async def test_tls_and_authentication(
    app_factory: Callable[..., Quart],
    mail_settings: dict[str, Any],
    tmp_path: Path,
    implicit: bool,
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_dev_cert(cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(auth=("mailer", "pw"), tls=context, implicit_tls=implicit)
    sink.start()
    try:
        settings = {**mail_settings, "SMTP_URL": sink.url, "SMTP_CA_FILE": str(cert)}
        assert sink.url.startswith("smtps://" if implicit else "smtp://")
        app = app_factory(**settings)
        async with app.test_app():
            await queue(app, 1)
            [mail] = await sink.wait_for(1)
        assert mail["To"] == "bob@example.com"
        # Without trusting the server's CA the mail waits (certificate refused), unsent.
        app = app_factory(**{**settings, "SMTP_CA_FILE": None})
        async with app.test_app():
            await queue(app, 1)
            outbox = OutboxStore(services(app).db)
            deadline = time.monotonic() + 20
            while (await outbox.counts())["failing"] < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            [status] = await outbox.unsent()
            assert "certificate" in (status.last_error or "").lower(), status.last_error
        assert sink.count() == 1
    finally:
        sink.stop()
