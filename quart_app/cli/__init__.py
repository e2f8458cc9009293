"""Command line: ``quart-app COMMAND`` or ``quart --app quart_app.asgi COMMAND``.

Both run the same click commands with the server's settings (the environment, see
``quart_app/startup/settings.py``), on the same database. Under ``quart`` the app Quart
loaded is used; ``quart-app`` builds one with ``create_app()``. Every failure is one line on stderr
(``Error: ...``) and exit status 1.

``db`` (Alembic migrations: ``db upgrade`` ...) is in ``database.py``, the OAuth clients'
commands in ``clients.py``, ``outbox`` in ``outbox.py``; ``register_commands`` hands whatever
``main`` holds to ``app.cli`` (``quart_app.asgi`` calls it, for ``quart --app``).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ..accounts.events import (
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    ADMIN_GRANTED,
    ADMIN_REVOKED,
    REGISTER,
    SESSION_ENDED,
    SecurityEvent,
)
from ..accounts.passwords import PasswordRejected, check_new_password
from ..errors import describe_validation_error
from ..jwt import get_manager
from ..jwt.key_files import KeyDirectory
from ..mail import OutboxStore
from ..security.clients import MIN_SECRET_LENGTH
from ..security.passwords import Passwords
from ..serving.devcert import dev_cert
from ..startup.settings import load_settings
from ..store import UsernameTaken, migrate
from ..store.oauth import SqlReplayStore
from ..store.redis_bus import BUS_EXTENSION_KEY
from .clients import COMMANDS as CLIENT_COMMANDS
from .context import command_app, one_line, run_with_services
from .database import db as db_commands
from .outbox import outbox_command

if TYPE_CHECKING:
    from quart import Quart

    from ..services import Services


@click.group()
def main() -> None:
    """Operate quart_app (settings come from the environment, as for the server)."""


def register_commands(app: Quart) -> None:
    """Make every ``quart-app`` command a ``quart --app ...`` command too."""
    for name, command in main.commands.items():
        app.cli.add_command(command, name)


main.add_command(db_commands)
main.add_command(dev_cert)
for _command in CLIENT_COMMANDS:
    main.add_command(_command)
main.add_command(outbox_command)


@main.command("init-db")
def init_db() -> None:
    """Create the tables, or migrate them to this release (the same as ``db upgrade``)."""

    url = str(command_app().config["DATABASE_URL"])
    try:
        migrate.upgrade(url, "head")
    except Exception as error:
        raise click.ClickException(one_line(error)) from None
    click.echo("database ready")


def _read_password() -> str:
    """From a hidden prompt on a terminal, else the first line of stdin; never argv."""
    stdin = sys.stdin
    if stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = stdin.readline()
    if not line:
        raise click.ClickException("no password on stdin")
    return line.rstrip("\r\n")


@main.command("hash-secret")
def hash_secret() -> None:
    """Print an argon2id hash of a client secret, for INTROSPECTION_CLIENTS ("id:<hash>").

    The secret is prompted for, or read from the first line of stdin; never argv. It
    must have 32 characters at least (as a plain secret in the setting must).
    """

    settings = load_settings()
    passwords = Passwords(
        time_cost=settings["ARGON2_TIME_COST"],
        memory_cost=settings["ARGON2_MEMORY_COST"],
        parallelism=settings["ARGON2_PARALLELISM"],
        threads=1,
    )
    secret = _read_password()
    if len(secret) < MIN_SECRET_LENGTH:
        raise click.ClickException(
            f"the secret has {len(secret)} characters; use at least {MIN_SECRET_LENGTH}"
        )
    click.echo(passwords.hasher.hash(secret))


@main.command("create-user")
@click.argument("username")
def create_user(username: str) -> None:
    """Create a user; the password is prompted for, or read from the first line of stdin."""
    from pydantic import ValidationError

    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..schemas import Credentials, username_key

    try:
        creds = Credentials.model_validate({"username": username, "password": _read_password()})
    except ValidationError as error:
        raise click.ClickException(describe_validation_error(error)) from None
    try:
        check_new_password(
            creds.password,
            username=creds.username,
            min_length=int(command_app().config["PASSWORD_MIN_LENGTH"]),
        )
    except PasswordRejected as rejected:
        raise click.ClickException(str(rejected)) from None

    async def work(svc: Services) -> tuple[int, str]:
        password_hash = await svc.passwords.hash(creds.password)
        try:
            user = await svc.users.create(
                creds.username,
                username_key(creds.username),
                password_hash,
                event=SecurityEvent(REGISTER, detail={"by": "command line"}),
            )
        except UsernameTaken:
            raise click.ClickException(f"username {creds.username!r} already exists") from None
        return user.id, user.username

    user_id, name = run_with_services(work, hashing=True)
    click.echo(f"created user {name} (id {user_id})")


@main.command("revoke-user")
@click.argument("username")
def revoke_user(username: str) -> None:
    """End every session of USERNAME (every token issued until now), on every worker and
    host.

    Workers enforce it within REVOCATION_SYNC_INTERVAL; a login still checking the
    password when it commits gets no session. The account itself stays usable: a new
    login gets new tokens (change the password, or ``disable``, to lock someone out).
    """
    user_id, name, ended = _end_sessions(username, reason="revoked")
    when = datetime.now(UTC).isoformat(timespec="seconds")
    click.echo(
        f"revoked every token of {name} (id {user_id}) issued before {when}"
        f" ({ended} sessions ended)"
    )


def _end_sessions(
    username: str, *, reason: str, disabled: bool | None = None
) -> tuple[int, str, int]:
    """End every session of ``username`` (optionally disabling it): (id, name, ended)."""
    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..schemas import username_key

    app = command_app()
    bus = app.extensions.get(BUS_EXTENSION_KEY)

    async def work(svc: Services) -> tuple[int, str, int]:
        user = await svc.users.by_key(username_key(username))
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        name = ACCOUNT_DISABLED if disabled else SESSION_ENDED
        event = SecurityEvent(name, user_id=user.id, detail={"by": "command line"})
        ended = await svc.sessions.end_all(user.id, reason=reason, event=event, disabled=disabled)
        if bus is not None:  # with Redis, workers hear of it at once, not at their next poll
            await bus.start(svc.revocations)
        try:
            await svc.revocations.store.add(ended.revoked)
        finally:
            if bus is not None:
                await bus.stop()
        return user.id, user.username, len(ended.ids)

    return run_with_services(work, app=app)


@main.group("admin")
def admin() -> None:
    """Grant or revoke the admin role (read from the database at each admin request)."""


@admin.command("grant")
@click.argument("username")
def admin_grant(username: str) -> None:
    """Make USERNAME an admin."""
    click.echo(f"{_set_role(username, 'admin')} is an admin")


@admin.command("revoke")
@click.argument("username")
def admin_revoke(username: str) -> None:
    """Take the admin role from USERNAME (effective at its next request)."""
    click.echo(f"{_set_role(username, 'user')} is no longer an admin")


def _set_role(username: str, role: str) -> str:
    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..schemas import username_key

    async def work(svc: Services) -> str:
        user = await svc.users.by_key(username_key(username))
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        name = ADMIN_GRANTED if role == "admin" else ADMIN_REVOKED
        event = SecurityEvent(name, detail={"by": "command line"})
        await svc.users.set_role(user.id, role, event=event)
        return user.username

    return run_with_services(work)


@main.command("sessions")
@click.argument("username")
def list_sessions(username: str) -> None:
    """List the live sessions of USERNAME (id, created, last used, client, user agent)."""
    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..schemas import username_key

    async def work(svc: Services) -> list[str]:
        user = await svc.users.by_key(username_key(username))
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        return [
            f"{s.id}  created {_iso(s.created_at)}  last used {_iso(s.last_used_at)}"
            f"  {s.client or '-'}  {s.user_agent or '-'}"
            for s in await svc.sessions.live(user.id)
        ]

    lines = run_with_services(work)
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} live sessions")


@main.command("end-sessions")
@click.argument("username")
def end_sessions(username: str) -> None:
    """End every session of USERNAME, on every worker and host."""
    user_id, name, ended = _end_sessions(username, reason="ended_by_admin")
    click.echo(f"ended {ended} sessions of {name} (id {user_id})")


@main.command("disable")
@click.argument("username")
def disable(username: str) -> None:
    """Disable USERNAME: every session ends and logins get 403 until ``enable``."""
    user_id, name, ended = _end_sessions(username, reason="disabled", disabled=True)
    click.echo(f"disabled {name} (id {user_id}); ended {ended} sessions")


@main.command("enable")
@click.argument("username")
def enable(username: str) -> None:
    """Let a disabled USERNAME log in again."""
    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..schemas import username_key

    async def work(svc: Services) -> str:
        user = await svc.users.by_key(username_key(username))
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        event = SecurityEvent(ACCOUNT_ENABLED, detail={"by": "command line"})
        await svc.users.enable(user.id, event=event)
        return user.username

    click.echo(f"enabled {run_with_services(work)}")


@main.command("events")
@click.option("--user", "username", default=None, help="Only this user's events.")
@click.option("--event", default=None, help="Only events of this name (e.g. login_failed).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
def events(username: str | None, event: str | None, limit: int) -> None:
    """Print security events, newest first, one JSON object a line."""
    import json

    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..schemas import username_key

    async def work(svc: Services) -> list[str]:
        user_id = None
        if username is not None:
            user = await svc.users.by_key(username_key(username))
            if user is None:
                raise click.ClickException(f"no user {username!r}")
            user_id = user.id
        records = await svc.events.page(limit=limit, user_id=user_id, event=event)
        return [
            json.dumps(
                {
                    "time": _iso(r.time),
                    "event": r.event,
                    "user_id": r.user_id,
                    "session_id": r.session_id,
                    "client": r.client,
                    "user_agent": r.user_agent,
                    "detail": r.detail,
                }
            )
            for r in records
        ]

    for line in run_with_services(work):
        click.echo(line)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@main.command("rotate-keys")
@click.option(
    "--now",
    "at_once",
    is_flag=True,
    help="Sign with the new key at once (a leaked key), without waiting KEY_ACTIVATION_DELAY.",
)
def rotate_keys(at_once: bool) -> None:
    """Add a new signing key pair (RS*/PS*/ES*/EdDSA keys generated in INSTANCE_PATH).

    The new public key is in the JWKS at once; every worker signs with it
    KEY_ACTIVATION_DELAY seconds later (with --now: within a second), so resource servers
    caching the JWKS know it before its first token. Tokens signed with older keys keep
    verifying (and their public keys stay in the JWKS) until those tokens expire.
    """

    app = command_app()
    keys = get_manager(app).keys
    if not isinstance(keys, KeyDirectory):
        algorithm = app.config["JWT_ALGORITHM"]
        where = (
            "JWT_SECRET_KEY (HS*): change the secret to rotate it (every token dies)"
            if str(algorithm).startswith("HS")
            else "JWT_PRIVATE_KEY/JWT_PUBLIC_KEY: deploy the new pair to rotate"
        )
        raise click.ClickException(f"{algorithm} keys come from {where}")
    try:
        # An empty directory got its first key when the app was built: that is the new key.
        key = keys.generated or keys.rotate(now=at_once)
    except Exception as error:
        raise click.ClickException(one_line(error)) from None
    starts = datetime.fromtimestamp(key.created_at, UTC).isoformat(timespec="seconds")
    click.echo(f"new {key.algorithm} signing key {key.kid} in {keys.path}, signing from {starts}")


@main.command("prune")
def prune() -> None:
    """Delete revocations whose tokens have all expired anyway, login counters that
    decide nothing any more, expired reset and verification tokens, and security events,
    ended sessions and sent mail older than AUDIT_RETENTION_DAYS."""
    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..accounts.recovery import recovery_store

    app = command_app()

    async def work(svc: Services) -> tuple[int, int, int, int, int, int]:
        store: Any = svc.revocations.store
        now = time.time()
        kept_since = now - float(svc.config["AUDIT_RETENTION_DAYS"]) * 86400
        await SqlReplayStore(svc.db).prune()
        return (
            int(await store.prune()),
            await svc.logins.store.prune(now),
            await svc.events.prune(kept_since),
            await svc.sessions.prune(kept_since),
            await recovery_store(app).prune_tokens(now),
            await OutboxStore(svc.db).prune(kept_since),
        )

    revocations, counters, events, sessions, tokens, mails = run_with_services(work, app=app)
    click.echo(f"pruned {revocations} expired revocations")
    if counters:
        click.echo(f"pruned {counters} expired login counters")
    if events or sessions:
        click.echo(
            f"pruned {events} security events and {sessions} ended sessions older than"
            " AUDIT_RETENTION_DAYS"
        )
    if tokens or mails:
        click.echo(
            f"pruned {tokens} expired recovery tokens and {mails} sent mails older than"
            " AUDIT_RETENTION_DAYS"
        )


@main.command("import-users")
@click.argument("source_url")
@click.option("--table", "table_name", default="user", show_default=True, help="Source table.")
@click.option("--id-column", default="id", show_default=True)
@click.option("--username-column", default="username", show_default=True)
@click.option("--password-column", default="password", show_default=True)
@click.option(
    "--new-ids", is_flag=True, help="Give every user a new id instead of keeping free ones."
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; write nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Also list the accounts already here.")
@click.option(
    "--allow-skipped",
    is_flag=True,
    help="Import the other rows when some are skipped or in conflict (default: import"
    " nothing and exit 1).",
)
def import_users_command(
    source_url: str,
    table_name: str,
    id_column: str,
    username_column: str,
    password_column: str,
    new_ids: bool,
    dry_run: bool,
    verbose: bool,
    allow_skipped: bool,
) -> None:
    """Import the Flask app's users from SOURCE_URL (e.g. sqlite:////srv/flask/instance/app.db).

    Passwords keep their Werkzeug hashes and become argon2id at each user's next login.
    One transaction, all or nothing: when a row is skipped or in conflict nothing is
    imported and it exits 1 (--allow-skipped imports the others and exits 0). Running it
    again imports nothing twice.
    """
    from sqlalchemy.engine import make_url

    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..accounts.importer import SourceError, import_users, read_source

    async def work(svc: Services) -> tuple[list[str], int]:
        try:
            users = await read_source(
                source_url,
                table_name=table_name,
                id_column=id_column,
                username_column=username_column,
                password_column=password_column,
            )
        except SourceError as error:
            raise click.ClickException(str(error)) from None
        try:
            shown = make_url(source_url).render_as_string(hide_password=True)
        except Exception:
            shown = "the source"
        report = await import_users(
            svc.db,
            users,
            source=shown,
            keep_ids=not new_ids,
            dry_run=dry_run,
            require_all=not allow_skipped,
        )
        problems = [*report.skipped, *report.conflicts]
        # "Already here" is not counted: after their first login, imported users' hashes
        # differ from the source's, so a run again lists them there.
        left_out = sum(len(problem.rows) for problem in problems)
        return report.lines(verbose), left_out

    lines, left_out = run_with_services(work)
    for line in lines:
        click.echo(line)
    if left_out and not allow_skipped:
        raise click.ClickException(
            f"{left_out} source row(s) cannot be imported (listed above), so nothing was"
            " imported: fix them in the source and run it again, or pass --allow-skipped"
            " to import the others"
        )


@main.group("mfa")
def mfa() -> None:
    """Second factors: an admin's reset, and re-encryption after a key rotation."""


@mfa.command("reset")
@click.argument("username")
def mfa_reset(username: str) -> None:
    """Remove every second factor of USERNAME (TOTP, recovery codes, passkeys).

    An admin's recovery path for a user who lost them: the password alone logs in again
    until the user enrols anew. Recorded as a security event of the account.
    """
    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..accounts.mfa import CONSOLE, MFA_RESET
    from ..routes.mfa_step import EXTENSION_KEY, SecondFactorServices
    from ..schemas import username_key

    app = command_app()
    factors: SecondFactorServices = app.extensions[EXTENSION_KEY]

    async def work(svc: Services) -> tuple[int, str, bool, int]:
        user = await svc.users.by_key(username_key(username))
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        passkeys = await factors.passkeys.store.remove_all(user.id)
        # The TOTP removal commits with the event, which names what went.
        had_totp = await factors.totp.disable(
            user.id, CONSOLE, event=MFA_RESET, detail={"by": "console", "passkeys": passkeys}
        )
        return user.id, user.username, had_totp, passkeys

    user_id, name, had_totp, passkeys = run_with_services(work, app=app)
    click.echo(
        f"reset the second factors of {name} (id {user_id}):"
        f" TOTP {'removed' if had_totp else 'was off'}, {passkeys} passkey(s) removed"
    )


@mfa.command("rekey")
def mfa_rekey() -> None:
    """Re-encrypt every stored TOTP secret with the first MFA_ENCRYPTION_KEY.

    Run it after putting a new key first in MFA_ENCRYPTION_KEY (the old ones after it);
    once it has run, the old keys can be removed.
    """
    # Deferred: importing it for every command would slow `quart-app --help`.
    from ..routes.mfa_step import EXTENSION_KEY, SecondFactorServices

    app = command_app()
    factors: SecondFactorServices = app.extensions[EXTENSION_KEY]

    async def work(svc: Services) -> int:
        return await factors.totp.store.rekey(factors.totp.cipher.rotate)

    count = run_with_services(work, app=app)
    click.echo(f"re-encrypted {count} TOTP secret(s) with the first key")
