"""DATABASE_URL as people spell it: mapped to the async drivers, or refused with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from quart_app.startup.settings import NOTES_KEY, SettingsError, async_database_url, load_settings


@pytest.mark.parametrize(
    ("given", "read_as"),
    [
        ("postgres://u:pw@db:5432/app", "postgresql+asyncpg://u:pw@db:5432/app"),
        ("postgresql://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite:///app.db", "sqlite+aiosqlite:///app.db"),
        ("sqlite:////srv/app.db", "sqlite+aiosqlite:////srv/app.db"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite+aiosqlite:///app.db", "sqlite+aiosqlite:///app.db"),
    ],
)
def test_common_spellings_map_to_the_async_drivers(given: str, read_as: str) -> None:
    notes: list[str] = []
    assert async_database_url(given, notes) == read_as
    assert bool(notes) == (given != read_as)


def test_the_note_hides_the_password(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "postgres://u:hunter2@db/app"}
    )
    assert settings["DATABASE_URL"] == "postgresql+asyncpg://u:hunter2@db/app"
    [note] = settings[NOTES_KEY]
    assert (
        note == "DATABASE_URL postgres://u:***@db/app is read as postgresql+asyncpg://u:***@db/app"
    )


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("garbage", "is not a database URL"),
        ("mongodb://db/orders", "scheme 'mongodb' is not supported"),
        ("postgresql+psycopg2://u@db/app", "is synchronous"),
        ("mysql://u@db/app", "is synchronous"),
    ],
)
def test_other_forms_are_refused_naming_the_supported_ones(given: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        async_database_url(given)
    [line] = caught.value.problems
    assert line.startswith("DATABASE_URL")
    assert says in line
    assert "sqlite:///" in line and "postgresql://" in line
