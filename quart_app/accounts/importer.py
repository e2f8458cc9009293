"""Import the users of the Flask app (Flask-SQLAlchemy's ``user`` table) into our store.

The Flask app's ``User`` model has ``id``, ``username`` and ``password`` (a Werkzeug hash).
Each row becomes one of our users with the hash kept as it is: the login verifies it
(:mod:`quart_app.security.werkzeug_hashes`) and re-hashes the password to argon2id the
first time it succeeds, so nobody needs a password reset.

The import is one transaction (a failure half-way imports nothing), all or nothing (with
``require_all``, the default of ``import-users``: a row skipped or in conflict imports
nothing, unless ``--allow-skipped`` says to import the others) and idempotent: an
account that exists here is never written again, whatever happened to it since. Rows
not imported are counted and listed, never guessed at:

* unchanged -- the same username with the same hash is here (an earlier run);
* already here -- the username (without regard to case) is here with another password:
  imported before and re-hashed at a login since, or registered here by someone. Both
  look the same, so it is left untouched either way (listed with ``verbose``);
* skipped -- a username our rules refuse (docs/migrating.md: 3 to 64 of letters, digits, ``_ . -``),
  or a password hash that is not a Werkzeug (or argon2) hash we can verify;
* conflicts -- rows whose usernames are equal without regard to case (the Flask app
  compared them with case); none of them is imported.

Ids are kept when free, so the ids the Flask app's other tables hold stay valid;
a row whose id is taken here by someone else gets a new id (reported as renumbered).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import column, insert, select, table, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from ..schemas import normalise_username, username_key
from ..security import werkzeug_hashes
from ..store import Database
from ..store.models import User, utcnow

#: How many keys or ids one ``IN (...)`` query carries (SQLite's variable limit).
CHUNK = 500
MAX_HASH_LENGTH = 512

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


class SourceError(Exception):
    """The source cannot be read (bad URL, missing file or table)."""


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


@dataclass(frozen=True, slots=True)
class SourceUser:
    id: int
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Problem:
    """A row not imported and why: ``rows`` are (source id, username) pairs."""

    rows: tuple[tuple[int, str], ...]
    reason: str


@dataclass
class ImportReport:
    source: str
    read: int = 0
    imported: list[tuple[int, str]] = field(default_factory=list)
    renumbered: list[tuple[int, int, str]] = field(default_factory=list)  # old, new, name
    unchanged: list[tuple[int, str]] = field(default_factory=list)
    present: list[tuple[int, str, int]] = field(default_factory=list)  # id, name, id here
    skipped: list[Problem] = field(default_factory=list)
    conflicts: list[Problem] = field(default_factory=list)
    dry_run: bool = False

    def lines(self, verbose: bool = False) -> list[str]:
        """The report as printed by ``import-users``: a summary, then one line per problem."""
        verb = "would import" if self.dry_run else "imported"
        out = [
            f"read {self.read} users from {self.source}",
            f"{verb} {len(self.imported)}, unchanged {len(self.unchanged)},"
            f" already here {len(self.present)}, skipped {len(self.skipped)},"
            f" conflicts {len(self.conflicts)}",
        ]
        out += [f"renumbered: id {old} -> {new} ({name})" for old, new, name in self.renumbered]
        if verbose:
            out += [
                f"already here: id {row_id} {name!r}: as id {here}, with another password;"
                " left untouched"
                for row_id, name, here in self.present
            ]
        elif self.present:
            out.append("(list the accounts already here with --verbose)")
        for kind, problems in (("skipped", self.skipped), ("conflict", self.conflicts)):
            for problem in problems:
                rows = ", ".join(f"id {row_id} {name!r}" for row_id, name in problem.rows)
                out.append(f"{kind}: {rows}: {problem.reason}")
        return out


def source_url(url: str) -> URL:
    """The async-driver URL for the Flask app's database URL (read-only for SQLite)."""
    if url.startswith("postgres://"):  # Heroku's spelling, refused by SQLAlchemy
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except Exception:
        raise SourceError(f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if "+" not in parsed.drivername or parsed.get_driver_name() in {"pysqlite", "psycopg2"}:
        if backend not in ASYNC_DRIVERS:
            raise SourceError(f"unsupported source database {backend!r} (sqlite or postgresql)")
        parsed = parsed.set(drivername=ASYNC_DRIVERS[backend])
    if backend == "sqlite":
        database = parsed.database or ""
        if database in {"", ":memory:"} or database.startswith("file:"):
            raise SourceError("the SQLite source must be a file: sqlite:////path/to/app.db")
        path = Path(database).resolve()
        if not path.is_file():
            raise SourceError(f"no such SQLite file: {path}")
        # Read-only: a typo must not leave an empty database behind, nor may we write.
        parsed = parsed.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})
    return parsed


async def read_source(
    url: str,
    *,
    table_name: str = "user",
    id_column: str = "id",
    username_column: str = "username",
    password_column: str = "password",  # noqa: S107 -- a column name
) -> list[SourceUser]:
    """Every row of the Flask app's user table, ordered by id."""
    engine = create_async_engine(source_url(url))
    source = table(table_name, column(id_column), column(username_column), column(password_column))
    query = select(
        source.c[id_column], source.c[username_column], source.c[password_column]
    ).order_by(source.c[id_column])
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    except Exception as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise SourceError(f"cannot read table {table_name!r}: {reason}") from None
    finally:
        await engine.dispose()
    users = []
    for row_id, name, password in rows:
        if not isinstance(row_id, int):
            raise SourceError(f"column {id_column!r} holds a non-integer id {row_id!r}")
        users.append(SourceUser(row_id, "" if name is None else str(name), password or ""))
    return users


def _hash_problem(password_hash: str) -> str | None:
    if not password_hash:
        return "no password hash"
    if len(password_hash) > MAX_HASH_LENGTH:
        return "password hash too long"
    if password_hash.startswith("$argon2"):
        return None
    try:
        werkzeug_hashes.parse(password_hash)
    except werkzeug_hashes.UnsupportedHash as error:
        return f"password hash not supported ({error})"
    return None


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


async def import_users(
    db: Database,
    users: list[SourceUser],
    *,
    source: str,
    keep_ids: bool = True,
    dry_run: bool = False,
    require_all: bool = False,
) -> ImportReport:
    """Import ``users`` into ``db`` in one transaction; see the module docstring.

    With ``require_all``, a row skipped or in conflict makes it a dry run: nothing is
    written, and the report says what would have been.
    """
    report = ImportReport(source=source, read=len(users), dry_run=dry_run)
    by_key: dict[str, list[tuple[SourceUser, str]]] = defaultdict(list)
    for user in users:
        try:
            name = normalise_username(user.username)
        except ValueError as error:
            report.skipped.append(Problem(((user.id, user.username),), str(error)))
            continue
        problem = _hash_problem(user.password)
        if problem is not None:
            report.skipped.append(Problem(((user.id, user.username),), problem))
            continue
        by_key[username_key(name)].append((user, name))
    candidates: dict[str, tuple[SourceUser, str]] = {}
    for key, group in by_key.items():
        if len(group) > 1:
            rows = tuple((user.id, user.username) for user, _ in group)
            report.conflicts.append(Problem(rows, "usernames equal without regard to case"))
        else:
            candidates[key] = group[0]

    if require_all and (report.skipped or report.conflicts):
        dry_run = report.dry_run = True
    with contextlib.suppress(_DryRun):
        await _write(db, candidates, report, keep_ids=keep_ids, dry_run=dry_run)
    return report


async def _write(
    db: Database,
    candidates: dict[str, tuple[SourceUser, str]],
    report: ImportReport,
    *,
    keep_ids: bool,
    dry_run: bool,
) -> None:
    async with db.session() as session, session.begin():
        present: dict[str, tuple[int, str]] = {}
        for keys in _chunks(list(candidates)):
            result = await session.execute(
                select(User.username_key, User.id, User.password_hash).where(
                    User.username_key.in_(keys)
                )
            )
            present.update({key: (user_id, pw) for key, user_id, pw in result})
        wanted_ids = [user.id for user, _ in candidates.values()] if keep_ids else []
        taken: set[int] = set()
        for ids in _chunks(wanted_ids):
            taken.update(await session.scalars(select(User.id).where(User.id.in_(ids))))

        rows: list[dict[str, Any]] = []
        for key, (user, name) in sorted(candidates.items(), key=lambda item: item[1][0].id):
            if key in present:
                existing_id, existing_hash = present[key]
                if existing_hash == user.password:
                    report.unchanged.append((user.id, name))
                else:
                    report.present.append((user.id, user.username, existing_id))
                continue
            row: dict[str, Any] = {
                "username": name,
                "username_key": key,
                "password_hash": user.password,
                "created_at": utcnow(),
            }
            if keep_ids and user.id not in taken:
                row["id"] = user.id
            rows.append(row)

        explicit = [row for row in rows if "id" in row]
        automatic = [row for row in rows if "id" not in row]
        if explicit:
            await session.execute(insert(User), explicit)
            if db.engine.dialect.name == "postgresql":
                # Explicit ids do not advance the sequence: move it past them.
                await session.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('users', 'id'),"
                        " (SELECT max(id) FROM users))"
                    )
                )
        for row in automatic:  # one by one: each needs its new id back
            new_id = await session.scalar(insert(User).values(**row).returning(User.id))
            source_row = candidates[row["username_key"]][0]
            report.renumbered.append((source_row.id, int(new_id or 0), row["username"]))
        report.imported = [(int(row.get("id", 0)), str(row["username"])) for row in explicit] + [
            (new, name) for _, new, name in report.renumbered
        ]
        if dry_run:
            raise _DryRun
