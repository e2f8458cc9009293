"""``quart-app outbox``: what mail is waiting, failing or refused for good."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import click

from ..mail.outbox import MailStatus, OutboxStore
from ..services import services


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _line(mail: MailStatus) -> str:
    state = "failing" if mail.state == "pending" and mail.attempts else mail.state
    due = _when(mail.next_attempt_at) if mail.state == "pending" else "-"
    error = (mail.last_error or "").replace("\n", " ")[:80]
    return (
        f"{mail.id:>6}  {state:<8} {mail.attempts:>8}  {due:<19}  {_when(mail.created_at)}"
        f"  {mail.template:<15} {mail.recipient}  {error}".rstrip()
    )


@click.command("outbox")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
def outbox_command(limit: int) -> None:
    """List the mail not sent yet: pending (failing: tried and due again) and failed
    (refused for good by the mail server), oldest first, with the last error."""
    # Deferred: the app is built only when the command runs (the CLI starts fast).
    from ..app import create_app

    try:
        app = create_app()
    except Exception as error:
        raise click.ClickException(str(error).splitlines()[0]) from None
    db = services(app).db

    async def work() -> tuple[dict[str, int], list[MailStatus]]:
        await db.open(create_tables=bool(app.config["DATABASE_CREATE_TABLES"]))
        try:
            store = OutboxStore(db)
            return await store.counts(), await store.unsent(limit)
        finally:
            await db.close()

    try:
        counts, mails = asyncio.run(work())
    except Exception as error:
        cause = getattr(error, "orig", None) or error
        raise click.ClickException(str(cause).strip().splitlines()[0]) from None
    click.echo(
        f"outbox: {counts['pending']} pending ({counts['failing']} failing),"
        f" {counts['failed']} failed, {counts['sent']} sent"
    )
    if mails:
        click.echo(
            f"{'id':>6}  {'state':<8} {'attempts':>8}  {'next attempt (UTC)':<19}"
            f"  {'queued (UTC)':<19}  {'template':<15} recipient  last error"
        )
        for mail in mails:
            click.echo(_line(mail))
