"""What every command shares: the app it acts on, and running its work with the app's
services open (the database, the hashing pool) outside a server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from quart import Quart
from quart.cli import ScriptInfo

from ..observability import observability
from ..services import Services, services

T = TypeVar("T")


def one_line(error: BaseException) -> str:
    """A database error's driver message (first line), or the error's own first line."""
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip().splitlines()
    return text[0] if text else type(error).__name__


def command_app() -> Quart:
    info = click.get_current_context().find_object(ScriptInfo)
    if info is not None:
        return info.load_app()
    # Deferred: the app is built only when a command runs (`quart-app --help` starts fast).
    from ..app import create_app

    try:
        return create_app()
    except Exception as error:
        raise click.ClickException(one_line(error)) from None


def run_with_services(
    work: Callable[[Services], Awaitable[T]], *, hashing: bool = False, app: Quart | None = None
) -> T:
    """Open the database (and the hashing pool), run ``work``, close them again."""
    app = app if app is not None else command_app()
    svc = services(app)
    metrics = observability(app).metrics

    async def run() -> T:
        await svc.db.open(create_tables=bool(svc.config["DATABASE_CREATE_TABLES"]))
        try:
            if hashing:
                await svc.passwords.start()
            return await work(svc)
        finally:
            await svc.passwords.stop()
            await svc.db.close()
            if metrics is not None:  # a command is no worker: leave no live gauge behind
                metrics.process_stopped()

    try:
        return asyncio.run(run())
    except click.ClickException:
        raise
    except Exception as error:
        raise click.ClickException(one_line(error)) from None
