"""Mail from templates: ``<name>.txt`` (first line ``Subject: ...``, a blank line, the
plain-text body) and, when it exists, ``<name>.html`` (the HTML alternative).

``MAIL_TEMPLATES_DIR`` is searched before the built-in templates
(``quart_app/mail/templates``), so a deployer replaces any of them by putting a file of
the same name there. HTML templates are auto-escaped; unknown variables are an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)


class TemplateProblem(ValueError):
    """A template is missing or cannot be rendered (the mail is not sendable as it is)."""


class Composer:
    """Builds the message of an outbox mail from its template and context."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        loaders: list[BaseLoader] = []
        if config.get("MAIL_TEMPLATES_DIR"):
            loaders.append(FileSystemLoader(str(config["MAIL_TEMPLATES_DIR"])))
        loaders.append(PackageLoader("quart_app.mail", "templates"))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self.sender = str(config["MAIL_FROM"])
        domain = parseaddr(self.sender)[1].rpartition("@")[2]
        self.domain = domain or "localhost"

    def message_id(self, unique: str) -> str:
        """The Message-ID header of the mail queued as ``unique``: the same every attempt."""
        return f"<{unique}@{self.domain}>"

    def compose(
        self, template: str, context: Mapping[str, Any], *, recipient: str, unique: str
    ) -> EmailMessage:
        try:
            text = self.env.get_template(f"{template}.txt").render(context)
        except TemplateNotFound as error:
            raise TemplateProblem(f"no mail template {error.name}") from None
        except Exception as error:
            raise TemplateProblem(f"template {template}.txt: {error}") from None
        first, _, body = text.partition("\n")
        if not first.lower().startswith("subject:"):
            raise TemplateProblem(f"template {template}.txt must start with 'Subject: ...'")
        try:
            html: str | None = self.env.get_template(f"{template}.html").render(context)
        except TemplateNotFound:
            html = None
        except Exception as error:
            raise TemplateProblem(f"template {template}.html: {error}") from None
        message = EmailMessage()
        message["Subject"] = first.partition(":")[2].strip()
        message["From"] = self.sender
        message["To"] = recipient
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = self.message_id(unique)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body.lstrip("\n"))
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message
