"""A real SMTP server for the mail tests: aiosmtpd on a free loopback port.

``SmtpSink`` keeps every message it accepts (parsed), can be stopped and started again
on the same port (an outage), and waits for messages with a bound instead of sleeping.
"""

from __future__ import annotations

import asyncio
import email
import re
import ssl
import threading
import time
from collections.abc import Collection
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.helpers.live import free_port


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=default)
        assert isinstance(message, EmailMessage)
        with self.sink.lock:
            self.sink.messages.append(message)
            self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server that accepts every mail (optionally only with AUTH)."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.port = free_port()
        self.auth = auth
        #: STARTTLS required (or, with ``implicit_tls``, TLS from the first byte).
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str | None, list[str]]] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        user = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{user}127.0.0.1:{self.port}"

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        return AuthResult(success=ok)

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self.auth is not None:
            options = {
                "authenticator": self._authenticate,
                "auth_required": True,
                # Without TLS, plain-text AUTH is what this test server can offer; with
                # implicit TLS aiosmtpd does not know the session is encrypted (it is).
                "auth_require_tls": self.tls is not None and not self.implicit_tls,
            }
        if self.tls is not None and self.implicit_tls:
            options["ssl_context"] = self.tls
        elif self.tls is not None:
            options.update(tls_context=self.tls, require_starttls=True)
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def received(self, to: Collection[str] | None = None) -> list[EmailMessage]:
        """The messages accepted so far, in their order of arrival; with ``to``, only those
        to one of these addresses (a sink several tests share holds all their mails)."""
        with self.lock:
            return [
                message
                for message, (_, recipients) in zip(self.messages, self.envelopes, strict=True)
                if to is None or not set(recipients).isdisjoint(to)
            ]

    def count(self, to: Collection[str] | None = None) -> int:
        return len(self.received(to))

    async def wait_for(
        self, count: int, timeout: float = 30.0, to: Collection[str] | None = None
    ) -> list[EmailMessage]:
        """The first ``count`` messages (to ``to``), once they have arrived (fails after
        ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(messages := self.received(to)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(messages)} of {count} mails arrived in {timeout}s")
            await asyncio.sleep(0.05)
        return messages[:count]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def token_in(message: EmailMessage) -> str:
    """The token of the first link ``...token=<token>`` in the mail's plain text."""
    found = re.search(r"https?://\S*token=([A-Za-z0-9_-]+)", text_of(message))
    assert found is not None, text_of(message)
    return found.group(1)
