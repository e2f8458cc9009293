"""The background sender: one per worker, each mail claimed by exactly one of them.

Every worker (on every host) runs one :class:`MailSender`. It claims one due mail at a
time from the outbox (see :mod:`.outbox`), composes it and hands it to the transport;
then it marks it sent, or due again after a back-off (5 s doubling up to
``MAIL_RETRY_MAX_SECONDS``), or failed when the server refused it for good. An SMTP
outage therefore delays mail and loses none; a sender that dies mid-mail lets go of its
claim when the lease runs out and another sends it (with the same Message-ID, so a
receiver can tell the repeat). A sender polls every ``MAIL_POLL_INTERVAL`` seconds and is
woken at once when its own worker queues mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quart import Quart

from ..store.db import Database
from ..store.errors import unavailable_reason
from .compose import Composer, TemplateProblem
from .config import parse_smtp_url
from .outbox import ClaimedMail, OutboxStore
from .transport import FileTransport, PermanentFailure, SmtpTransport, Transport

log = logging.getLogger(__name__)

EXTENSION_KEY = "quart_app.mail"
FIRST_RETRY = 5.0


def transport_from_settings(config: Mapping[str, Any]) -> Transport:
    if config.get("SMTP_URL"):
        return SmtpTransport(
            parse_smtp_url(str(config["SMTP_URL"])),
            timeout=float(config["MAIL_SEND_TIMEOUT"]),
            ca_file=str(config["SMTP_CA_FILE"]) if config.get("SMTP_CA_FILE") else None,
        )
    return FileTransport(Path(str(config["INSTANCE_PATH"])) / "outbox")


def backoff(attempts: int, ceiling: float) -> float:
    """Seconds before attempt ``attempts + 1``: 5 s doubling, capped, with 10% jitter."""
    delay = min(ceiling, FIRST_RETRY * 2.0 ** max(0, attempts - 1))
    return delay * (0.9 + 0.2 * random.random())  # noqa: S311 - spreading, not secrecy


class MailSender:
    def __init__(
        self,
        db: Database,
        config: Mapping[str, Any],
        *,
        transport: Transport | None = None,
        name: str | None = None,
    ) -> None:
        self.outbox = OutboxStore(db)
        self.composer = Composer(config)
        self.transport = transport if transport is not None else transport_from_settings(config)
        self.poll_interval = float(config["MAIL_POLL_INTERVAL"])
        self.retry_max = float(config["MAIL_RETRY_MAX_SECONDS"])
        #: A claim outlives the slowest exchange the transport allows, with room to mark it.
        self.lease = float(config["MAIL_SEND_TIMEOUT"]) + 30.0
        self.name = name or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unavailable = False

    def wake(self) -> None:
        """Look at the outbox now (this worker just committed mail)."""
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mail-sender")

    async def stop(self) -> None:
        """Finish the mail in hand (within the send timeout), then stop: a mail sent but
        not yet marked would otherwise be sent again once its claim ran out."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.lease)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        self._stopping = False

    async def _run(self) -> None:
        log.info("mail sender %s delivering to %r", self.name, self.transport)
        while not self._stopping:
            try:
                while not self._stopping and await self.send_one():
                    pass
            except Exception as error:
                # Said once per outage, not at every poll.
                if not self._unavailable and unavailable_reason(error) is None:
                    log.exception("mail sender: outbox check failed; mail waits")
                elif not self._unavailable:
                    log.warning("mail sender: database unavailable (%s); mail waits", error)
                self._unavailable = True
            else:
                if self._unavailable:
                    log.warning("mail sender: the outbox answers again")
                self._unavailable = False
            # asyncio.timeout, not wait_for: no task is made per poll.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def send_one(self) -> bool:
        """Claim and deliver one due mail; False when none is due."""
        if not self.outbox.db.ready:  # not reached yet, or its schema not checked
            return False
        mail = await self.outbox.claim(self.name, self.lease)
        if mail is None:
            return False
        await self._deliver(mail)
        return True

    async def _deliver(self, mail: ClaimedMail) -> None:
        try:
            message = self.composer.compose(
                mail.template, mail.context, recipient=mail.recipient, unique=mail.message_id
            )
            await self.transport.send(message)
        except (TemplateProblem, PermanentFailure) as error:
            log.error("mail %s to %s refused for good: %s", mail.id, mail.recipient, error)
            await self.outbox.failed(mail.id, self.name, str(error))
            return
        except Exception as error:
            delay = backoff(mail.attempts + 1, self.retry_max)
            reason = f"{type(error).__name__}: {error}"
            log.warning(
                "mail %s to %s not sent (%s); retrying in %.0fs",
                mail.id,
                mail.recipient,
                reason,
                delay,
            )
            await self.outbox.retry_later(mail.id, self.name, delay, reason)
            return
        if not await self.outbox.sent(mail.id, self.name):
            log.warning("mail %s was sent after its claim ran out", mail.id)


def init_mail(app: Quart, db: Database) -> MailSender:
    """The app's sender (the app starts it once the database is open, stops it first)."""
    sender = MailSender(db, app.config)
    app.extensions[EXTENSION_KEY] = sender
    return sender


def mail_sender(app: Quart) -> MailSender:
    sender: MailSender = app.extensions[EXTENSION_KEY]
    return sender
