"""``import-users``: the Flask app's users come over and log in with their old passwords."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from quart_app import create_app
from quart_app.services import services
from quart_app.store import UserStore
from tests.helpers.backend_servers import PostgresRun
from tests.helpers.ops_helpers import cli, cli_env, flask_database, legacy_sha256
from tests.helpers.support import login, make_config

FLASK_USERS = [
    # (id, username, password, how Werkzeug hashed it)
    (1, "alice", "alice-scrypt-pw", generate_password_hash("alice-scrypt-pw")),
    (2, "bob", "bob-pbkdf2-pw", generate_password_hash("bob-pbkdf2-pw", "pbkdf2:sha256:2000")),
    (7, "Carol.S", "carol-legacy-pw", legacy_sha256("carol-legacy-pw")),
]


def rows(users: list[tuple[int, str, str, str]]) -> list[tuple[int, str, str]]:
    return [(user_id, name, stored) for user_id, name, _, stored in users]


def user_rows(tmp_path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(tmp_path / "app.db") as conn:
        return list(conn.execute("SELECT id, username, password_hash FROM users ORDER BY id"))


async def test_imported_users_log_in_and_are_rehashed_to_argon2(tmp_path: Path) -> None:
    source = flask_database(tmp_path / "flask.db", rows(FLASK_USERS))
    env = cli_env(tmp_path)
    result = await cli(["import-users", source], env)
    assert result.exit_code == 0, result.output
    assert "imported 3, unchanged 0, already here 0, skipped 0, conflicts 0" in result.stdout
    # Ids are kept, hashes stored as they were.
    assert [(i, n) for i, n, _ in user_rows(tmp_path)] == [(1, "alice"), (2, "bob"), (7, "Carol.S")]
    assert [h for _, _, h in user_rows(tmp_path)] == [stored for *_, stored in FLASK_USERS]
    # Straight away again: the same rows are here, nothing is written.
    again = await cli(["import-users", source], env)
    assert "imported 0, unchanged 3, already here 0, skipped 0, conflicts 0" in again.stdout

    app = create_app(make_config(tmp_path))
    async with app.test_app():
        client = app.test_client()
        for user_id, name, password, _ in FLASK_USERS:
            wrong = await client.post("/login", json={"username": name, "password": "nope-nope"})
            assert wrong.status_code == 401
            tokens = await login(client, name.lower(), password)  # case-insensitive login
            me = await client.get(
                "/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
            assert (await me.get_json())["id"] == user_id
            stored = await services(app).users.by_id(user_id)
            assert stored is not None and stored.password_hash.startswith("$argon2id$")
            await login(client, name, password)  # and again, now against argon2id
        # Registering after an import with kept ids still gets a fresh id.
        response = await client.post("/register", json={"username": "dan", "password": "x" * 10})
        assert response.status_code == 201 and (await response.get_json())["id"] == 8

    # After those logins the hashes are argon2id: running it again still writes nothing.
    rehashed = user_rows(tmp_path)
    again = await cli(["import-users", "--verbose", source], env)
    assert again.exit_code == 0, again.output
    assert "imported 0, unchanged 0, already here 3, skipped 0, conflicts 0" in again.stdout
    assert (
        "already here: id 7 'Carol.S': as id 7, with another password; left untouched"
        in again.stdout.splitlines()
    )
    assert user_rows(tmp_path) == rehashed


async def test_skips_conflicts_and_accounts_already_here_are_reported(tmp_path: Path) -> None:
    pw = generate_password_hash("whatever-pw", "pbkdf2:sha256:1000")
    source = flask_database(
        tmp_path / "flask.db",
        [
            (1, "alice", pw),
            (2, "Bob", pw),
            (3, "bob", pw),  # same as Bob without regard to case
            (4, "no spaces allowed", pw),
            (5, "ok_name", "plain$$whatever-pw"),
            (6, "taken", pw),  # registered here already, by someone else
        ],
    )
    env = cli_env(tmp_path)
    app = create_app(make_config(tmp_path))
    async with app.test_app():
        await app.test_client().post(
            "/register", json={"username": "TAKEN", "password": "someone-else"}
        )

    result = await cli(["import-users", source], env)
    # All or nothing: rows stayed behind, so nothing went in, and a script notices (exit 1).
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        "Error: 4 source row(s) cannot be imported (listed above), so nothing was imported:"
        " fix them in the source and run it again, or pass --allow-skipped to import the"
        " others"
    )
    lines = result.stdout.splitlines()
    assert "would import 1, unchanged 0, already here 1, skipped 2, conflicts 1" in lines
    assert "conflict: id 2 'Bob', id 3 'bob': usernames equal without regard to case" in lines
    assert "(list the accounts already here with --verbose)" in lines
    assert [(i, n) for i, n, _ in user_rows(tmp_path)] == [(1, "TAKEN")]
    assert any(
        line.startswith("skipped: id 4 'no spaces allowed': username must") for line in lines
    )
    assert any(
        line.startswith("skipped: id 5 'ok_name': password hash not supported") for line in lines
    )
    dry = await cli(["import-users", "--allow-skipped", "-v", "--dry-run", source], env)
    assert dry.exit_code == 0, dry.output
    verbose = dry.stdout.splitlines()
    assert "already here: id 6 'taken': as id 1, with another password; left untouched" in verbose
    assert [(i, n) for i, n, _ in user_rows(tmp_path)] == [(1, "TAKEN")]
    accepted = await cli(["import-users", "--allow-skipped", source], env)
    assert accepted.exit_code == 0, accepted.output
    assert "imported 1, unchanged 0, already here 1, skipped 2, conflicts 1" in (
        accepted.stdout.splitlines()
    )
    # alice's id 1 is taken by TAKEN: she is renumbered rather than refused.
    assert "renumbered: id 1 -> 2 (alice)" in accepted.stdout.splitlines()
    assert [(i, n) for i, n, _ in user_rows(tmp_path)] == [(1, "TAKEN"), (2, "alice")]
    assert "whatever-pw" not in result.output  # no hash or password is ever printed
    assert pw not in result.output


async def test_a_failure_half_way_imports_nothing(tmp_path: Path) -> None:
    pw = generate_password_hash("whatever-pw", "pbkdf2:sha256:1000")
    users = [(i, f"user{i}", pw) for i in range(1, 21)]
    source = flask_database(tmp_path / "flask.db", users)
    env = cli_env(tmp_path)
    assert (await cli(["init-db"], env)).exit_code == 0
    with sqlite3.connect(tmp_path / "app.db") as conn:
        # The database refuses the 15th row, after 14 have gone in.
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON users WHEN NEW.username = 'user15'"
            " BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"
        )
    result = await cli(["import-users", source], env)
    assert result.exit_code == 1
    assert result.stderr == "Error: disk quota exceeded\n"
    assert user_rows(tmp_path) == []

    with sqlite3.connect(tmp_path / "app.db") as conn:
        conn.execute("DROP TRIGGER refuse")
    result = await cli(["import-users", source], env)
    assert result.exit_code == 0 and "imported 20," in result.stdout
    assert len(user_rows(tmp_path)) == 20


async def test_dry_run_and_new_ids(tmp_path: Path) -> None:
    source = flask_database(tmp_path / "flask.db", rows(FLASK_USERS))
    env = cli_env(tmp_path)
    dry = await cli(["import-users", "--dry-run", source], env)
    assert dry.exit_code == 0 and "would import 3, unchanged 0" in dry.stdout
    assert user_rows(tmp_path) == []
    result = await cli(["import-users", "--new-ids", source], env)
    assert result.exit_code == 0 and "imported 3," in result.stdout
    assert [(i, n) for i, n, _ in user_rows(tmp_path)] == [(1, "alice"), (2, "bob"), (3, "Carol.S")]
    assert "renumbered: id 7 -> 3 (Carol.S)" in result.stdout


async def test_other_table_and_column_names(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (uid INTEGER PRIMARY KEY, login TEXT, pw_hash TEXT)")
        conn.execute("INSERT INTO accounts VALUES (3, 'erin', ?)", (legacy_sha256("erin-pw-123"),))
    args = ["--table", "accounts", "--id-column", "uid", "--username-column", "login"]
    result = await cli(
        ["import-users", *args, "--password-column", "pw_hash", f"sqlite:///{path}"],
        cli_env(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert user_rows(tmp_path)[0][:2] == (3, "erin")


async def test_unreadable_sources_are_one_line_errors(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    missing = tmp_path / "missing.db"
    result = await cli(["import-users", f"sqlite:///{missing}"], env)
    assert (result.exit_code, result.stderr) == (1, f"Error: no such SQLite file: {missing}\n")
    assert not missing.exists()  # not created by trying

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = await cli(["import-users", f"sqlite:///{empty}"], env)
    assert result.exit_code == 1
    assert result.stderr == "Error: cannot read table 'user': no such table: user\n"

    for url, message in [
        ("not a url", "not a database URL"),
        ("mysql://u:p@localhost/app", "unsupported source database 'mysql'"),
    ]:
        result = await cli(["import-users", url], env)
        assert result.exit_code == 1 and result.stderr.startswith(f"Error: {message}")
        assert len(result.stderr.splitlines()) == 1


async def test_store_sees_imported_users_case_insensitively(tmp_path: Path) -> None:
    source = flask_database(tmp_path / "flask.db", rows(FLASK_USERS))
    assert (await cli(["import-users", source], cli_env(tmp_path))).exit_code == 0
    app = create_app(make_config(tmp_path))
    async with app.test_app():
        store: UserStore = services(app).users
        carol = await store.by_key("carol.s")
        assert carol is not None and carol.username == "Carol.S" and carol.id == 7
        response = await app.test_client().post(
            "/register", json={"username": "CAROL.s", "password": "another-person"}
        )
        assert response.status_code == 409


async def test_import_on_each_backend_keeps_ids_and_the_id_sequence_moves_on(
    tmp_path: Path, backend: str, backend_config: dict[str, str]
) -> None:
    source = flask_database(tmp_path / "flask.db", rows(FLASK_USERS))
    result = await cli(["import-users", source], cli_env(tmp_path, **backend_config))
    assert result.exit_code == 0, result.output
    assert "imported 3, unchanged 0, already here 0, skipped 0, conflicts 0" in result.stdout
    app = create_app(make_config(tmp_path, **backend_config))
    async with app.test_app():
        client = app.test_client()
        for user_id, name, password, _ in FLASK_USERS:
            await login(client, name, password)
            stored = await services(app).users.by_id(user_id)
            assert stored is not None and stored.password_hash.startswith("$argon2id$"), backend
        # On PostgreSQL explicit ids do not move the sequence; the import moves it.
        response = await client.post("/register", json={"username": "dan", "password": "x" * 10})
        assert response.status_code == 201, await response.get_data(as_text=True)
        assert (await response.get_json())["id"] == 8


async def test_import_from_a_postgresql_flask_database(
    tmp_path: Path, postgres_server: PostgresRun
) -> None:
    """The Flask app on PostgreSQL: its ``"user"`` table (a reserved word), a plain URL."""
    import asyncpg

    conn = await asyncpg.connect(postgres_server.dsn, timeout=5)
    try:
        await conn.execute(
            'CREATE TABLE "user" (id serial PRIMARY KEY, username varchar(80) UNIQUE NOT NULL,'
            " password varchar(256) NOT NULL)"
        )
        await conn.executemany(
            'INSERT INTO "user" (id, username, password) VALUES ($1, $2, $3)',
            rows(FLASK_USERS),
        )
        # As Flask-SQLAlchemy spells it (psycopg2 driver); the importer reads with asyncpg.
        source = make_url(postgres_server.url).set(drivername="postgresql+psycopg2")
        result = await cli(
            ["import-users", source.render_as_string(hide_password=False)], cli_env(tmp_path)
        )
    finally:
        await conn.execute('DROP TABLE IF EXISTS "user"')
        await conn.close()
    assert result.exit_code == 0, result.output
    assert "imported 3, unchanged 0, already here 0, skipped 0, conflicts 0" in result.stdout
    if source.password:
        assert source.password not in result.output  # the URL is shown without it
    assert [(i, n) for i, n, _ in user_rows(tmp_path)] == [(1, "alice"), (2, "bob"), (7, "Carol.S")]
