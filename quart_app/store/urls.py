"""``DATABASE_URL`` as people write it, turned into the async URL SQLAlchemy needs.

``postgres://`` (Heroku, Render, ``psql``), ``postgresql://`` and ``sqlite:///`` are what
everyone types; SQLAlchemy reads them as the synchronous psycopg2 and pysqlite drivers,
which an asyncio server cannot use. They are mapped to asyncpg and aiosqlite, saying so
in the log; anything else that is not an async driver is refused with the forms that work.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ..startup.settings import SettingsError

#: Bare schemes and the async driver they are read as.
ASYNC_DRIVERS = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg"}
ASYNC_DRIVERS["sqlite"] = "sqlite+aiosqlite"

SUPPORTED = (
    "sqlite:///relative/app.db or sqlite:////absolute/app.db (aiosqlite),"
    " postgresql://user:password@host:5432/dbname (asyncpg)"
)


def _shown(url: URL | str) -> str:
    return url.render_as_string(hide_password=True) if isinstance(url, URL) else url


def async_database_url(raw: str, notes: list[str] | None = None) -> str:
    """The async SQLAlchemy URL for ``raw``; :class:`SettingsError` if there is none.

    A mapped spelling appends a line to ``notes``, for the log once logging is set up.
    """
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise SettingsError(
            f"DATABASE_URL {raw!r} is not a database URL: use {SUPPORTED}"
        ) from None
    scheme = url.drivername
    if scheme in ASYNC_DRIVERS:
        mapped = url.set(drivername=ASYNC_DRIVERS[scheme])
        if notes is not None:
            notes.append(f"DATABASE_URL {_shown(url)} is read as {_shown(mapped)}")
        url = mapped
    try:
        dialect = url.get_dialect()
    except (NoSuchModuleError, ImportError) as error:
        raise SettingsError(
            f"DATABASE_URL scheme {scheme!r} is not supported ({error}): use {SUPPORTED}"
        ) from None
    if not getattr(dialect, "is_async", False):
        raise SettingsError(
            f"DATABASE_URL driver {scheme!r} is synchronous and cannot serve an asyncio app:"
            f" use {SUPPORTED}"
        )
    return url.render_as_string(hide_password=False)
