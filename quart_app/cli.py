"""Command line: ``quart-app init-db`` and friends (also ``quart --app quart_app.asgi ...``)."""

from __future__ import annotations

import asyncio
import sys

import click

from .app import create_app
from .services import services


@click.group()
def main() -> None:
    """Operate quart_app (settings come from the environment, as for the server)."""


@main.command("init-db")
def init_db() -> None:
    """Create the database tables."""

    async def run() -> None:
        app = create_app()
        db = services(app).db
        await db.open(create_tables=True)
        await db.close()

    try:
        asyncio.run(run())
    except Exception as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo("database ready")
