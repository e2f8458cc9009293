"""The mail settings, read once and checked before start-up (one line per problem)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..startup.settings import SettingsError

SMTP_SCHEMES = {"smtp": 587, "smtps": 465}
LINK_SETTINGS = ("PASSWORD_RESET_URL", "EMAIL_VERIFY_URL")


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where ``SMTP_URL`` points: ``smtp://`` uses STARTTLS, ``smtps://`` TLS from the start."""

    host: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpServer:
    """``smtp://user:pass@host:587`` or ``smtps://host``; raises :class:`SettingsError`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise SettingsError(f"SMTP_URL is not a URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in SMTP_SCHEMES or not parts.hostname:
        raise SettingsError(
            "SMTP_URL must look like smtp://user:password@host:587 (STARTTLS) or"
            " smtps://user:password@host:465 (TLS)"
        )
    return SmtpServer(
        host=parts.hostname,
        port=port or SMTP_SCHEMES[scheme],
        use_tls=scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def mail_problems(settings: Mapping[str, Any]) -> list[str]:
    """One line per mail setting that cannot work."""
    problems = []
    if settings.get("SMTP_URL"):
        try:
            parse_smtp_url(str(settings["SMTP_URL"]))
        except SettingsError as error:
            problems.append(str(error))
    sender = str(settings.get("MAIL_FROM") or "")
    if "@" not in parseaddr(sender)[1]:
        problems.append(
            f"MAIL_FROM must be an address like 'Name <no-reply@example.com>', not {sender!r}"
        )
    for name in LINK_SETTINGS:
        link = settings.get(name)
        if link and (
            "{token}" not in str(link) or urlsplit(str(link)).scheme not in {"http", "https"}
        ):
            problems.append(
                f"{name} must be an http(s) URL with {{token}} in it, e.g."
                f" https://example.com/reset?token={{token}}, not {link!r}"
            )
    ca_file = settings.get("SMTP_CA_FILE")
    if ca_file and not Path(str(ca_file)).is_file():
        problems.append(f"SMTP_CA_FILE {ca_file} is not a file (PEM certificates of the CA)")
    folder = settings.get("MAIL_TEMPLATES_DIR")
    if folder and not Path(str(folder)).is_dir():
        problems.append(f"MAIL_TEMPLATES_DIR {folder} is not a directory")
    return problems
