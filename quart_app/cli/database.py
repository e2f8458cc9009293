"""``quart-app db ...``: Alembic migrations from the command line.

A click group for ``quart_app.cli`` to mount with ``main.add_command(db)``. It needs only
``DATABASE_URL`` (read through ``settings.py``, like the server), not the whole app, so a
deploy step can migrate before any host starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..startup.settings import async_database_url, load_settings

if TYPE_CHECKING:
    from types import ModuleType


def _migrate() -> ModuleType:
    # Alembic and SQLAlchemy load when a command runs, not for `--help`.
    from ..store import migrate

    return migrate


def _url(url: str | None) -> str:
    return async_database_url(url) if url else str(load_settings()["DATABASE_URL"])


def _fail(error: Exception) -> click.ClickException:
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return click.ClickException(lines[0] if lines else type(error).__name__)


url_option = click.option(
    "--url", default=None, help="Database URL (default: DATABASE_URL's value)."
)


def _move(step: str, url: str | None, revision: str) -> None:
    """Run an Alembic ``step`` to ``revision`` and say where the database is now."""
    migrate = _migrate()
    target = _url(url)
    try:
        getattr(migrate, step)(target, revision)
        now = migrate.current(target)
    except Exception as error:
        raise _fail(error) from None
    click.echo(f"database at {', '.join(sorted(now)) or 'base'}")


@click.group("db")
def db() -> None:
    """Database schema migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@url_option
def upgrade(revision: str, url: str | None) -> None:
    """Migrate the database to REVISION (default: the newest). Safe to run on every deploy."""
    _move("upgrade", url, revision)


@db.command("downgrade")
@click.argument("revision")
@url_option
def downgrade(revision: str, url: str | None) -> None:
    """Migrate the database back to REVISION ("base" removes every table)."""
    _move("downgrade", url, revision)


@db.command("current")
@url_option
def current(url: str | None) -> None:
    """Print the database's revision and whether it is this release's head (exit 1 if not)."""
    migrate = _migrate()
    try:
        now = migrate.current(_url(url))
    except Exception as error:
        raise _fail(error) from None
    head = migrate.heads()
    click.echo(f"database: {', '.join(sorted(now)) or 'none'}; head: {', '.join(sorted(head))}")
    if now != head:
        raise click.ClickException(f"behind: run `{migrate.UPGRADE_COMMAND}`")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@url_option
def revision(message: str, url: str | None) -> None:
    """(Developers) write a migration from the difference between models and the database."""
    migrate = _migrate()
    try:
        migrate.revision(_url(url), message)
    except Exception as error:
        raise _fail(error) from None
