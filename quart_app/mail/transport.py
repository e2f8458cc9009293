"""Where composed mail goes: an SMTP server (aiosmtplib), or ``.eml`` files in a folder."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from .config import SmtpServer


class PermanentFailure(Exception):
    """The mail server refused this mail for good (a 5xx answer): retrying cannot help."""


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; :class:`PermanentFailure` if refused for good, any other
        exception for a failure worth retrying."""


class SmtpTransport:
    """One SMTP session per mail: STARTTLS (``smtp://``, when the server offers it) or
    TLS (``smtps://``), and authentication when the URL has a user."""

    def __init__(self, server: SmtpServer, *, timeout: float, ca_file: str | None = None) -> None:
        self.server = server
        self.timeout = timeout
        self.ca_file = ca_file

    async def send(self, message: EmailMessage) -> None:
        server = self.server
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.use_tls,
                # None: upgrade when the server offers STARTTLS (aiosmtplib refuses to
                # authenticate over a connection that stayed plain unless told).
                start_tls=None if not server.use_tls else False,
                timeout=self.timeout,
                cert_bundle=self.ca_file,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            if all(500 <= refused.code < 600 for refused in error.recipients):
                raise PermanentFailure(str(error)) from error
            raise
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600 and not isinstance(
                error, aiosmtplib.SMTPAuthenticationError
            ):
                raise PermanentFailure(f"{error.code} {error.message}") from error
            raise

    def __repr__(self) -> str:
        return f"SMTP {self.server.host}:{self.server.port}"


class FileTransport:
    """Writes each mail to ``<folder>/<Message-ID>.eml`` (a retry rewrites the same file),
    through a temporary file and a rename: a reader never sees half a mail."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = re.sub(r"[^A-Za-z0-9.@_-]", "", str(message["Message-ID"])) or secrets.token_hex(8)
        target = self.folder / f"{name}.eml"
        tmp = self.folder / f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, message.as_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    def __repr__(self) -> str:
        return f"files in {self.folder}"
