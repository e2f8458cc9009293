"""Email addresses, their verification, and password reset by mail.

Tokens are 32 random bytes (URL-safe base64 in the mail), stored as their SHA-256 only,
single use (taken by a ``DELETE ... RETURNING``: of two requests with one token, one gets
the row), short lived, and void when a newer one of the same purpose is issued. A reset
token also carries a stamp of the password hash it was issued under: once the password
changes, by whatever path, the stamp no longer matches and the token is dead. Every
mail is queued in the transaction that decided it (:mod:`quart_app.mail`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from quart import Quart, current_app
from sqlalchemy import Row, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..jwt import get_manager
from ..mail import queue_mail, queue_notification
from ..mail.sender import MailSender
from ..store.db import Database, bounded_store
from ..store.errors import retry_conflicts
from ..store.events import Recording, recording
from ..store.models import RecoveryToken, SecurityEventRow, User, UserEmail
from .events import LOGIN, NO_CLIENT, Client, SecurityEvent

EXTENSION_KEY = "quart_app.recovery"
RESET, VERIFY = "reset", "verify"
#: Security events of this module (a reset itself records "password_reset").
NEW_SIGNIN = "new_signin"  # a sign-in from a new client (NOTIFY_NEW_SIGNIN)
EMAIL_CHANGED = "email_changed"
EMAIL_VERIFIED = "email_verified"
RESET_REQUESTED = "password_reset_requested"  # a reset mail was queued
#: At most this many reset mails per account within ``RESET_MAIL_WINDOW`` seconds.
RESET_MAILS_PER_WINDOW = 3
RESET_MAIL_WINDOW = 3600.0


class EmailTaken(Exception):
    """Another account verified this address first."""


class TokenInvalid(Exception):
    """The token is unknown, used, expired, or no longer good for its account."""


def email_key(email: str) -> str:
    """What uniqueness among verified addresses is decided on: case-folded."""
    return email.casefold()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()


def link(template: str | None, token: str) -> str | None:
    return template.replace("{token}", token) if template else None


@dataclass(frozen=True, slots=True)
class EmailState:
    email: str
    verified: bool


@dataclass(frozen=True, slots=True)
class ResetTarget:
    """The account a valid reset token is for."""

    user_id: int
    username: str
    password_hash: str


async def use_up_token(
    session: AsyncSession, token: str, purpose: str
) -> Row[int, str | None, str | None, float] | None:
    """Delete the token of ``purpose`` (single use: of concurrent callers one gets its
    row) and return what it was issued with: ``user_id``, ``email``, ``password_stamp``,
    ``expires_at`` (the caller checks expiry); None when there is no such token."""
    result = await session.execute(
        delete(RecoveryToken)
        .where(RecoveryToken.token_hash == token_digest(token), RecoveryToken.purpose == purpose)
        .returning(
            RecoveryToken.user_id,
            RecoveryToken.email,
            RecoveryToken.password_stamp,
            RecoveryToken.expires_at,
        )
    )
    return result.first()


async def issue_token(
    session: AsyncSession,
    user_id: int,
    purpose: str,
    expires_at: float,
    *,
    email: str | None = None,
    stamp: str | None = None,
) -> str:
    """A new token for ``purpose`` that ends at ``expires_at``, voiding the user's older
    ones of that purpose."""
    await session.execute(
        delete(RecoveryToken).where(
            RecoveryToken.user_id == user_id, RecoveryToken.purpose == purpose
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        RecoveryToken(
            token_hash=token_digest(token),
            user_id=user_id,
            purpose=purpose,
            email=email,
            password_stamp=stamp,
            expires_at=expires_at,
        )
    )
    return token


@bounded_store
class RecoveryStore:
    """Every read and write of addresses and tokens (the routes call these)."""

    def __init__(
        self,
        db: Database,
        config: Mapping[str, Any],
        sender: MailSender,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        #: What "now" is for tokens' lifetimes and the mail limit (the app's JWT manager clock).
        self.clock = clock
        self.config = config
        self.sender = sender
        self.signins = SigninNotices(db) if config.get("NOTIFY_NEW_SIGNIN") else None

    async def signed_in(self, user_id: int, client: Client, session_id: str) -> None:
        """After a login (in the background): the new-client notice, when enabled."""
        if self.signins is not None and await self.signins.note(user_id, client, session_id):
            self.mail_queued()

    def mail_queued(self) -> None:
        """Mail was committed: have this worker's sender look now, not at its next poll."""
        self.sender.wake()

    def on_registration(self, email: str) -> Callable[[AsyncSession, User], Awaitable[str]]:
        """What registration runs in its transaction when it is given an address."""

        async def then(session: AsyncSession, user: User) -> str:
            return await self.start_verification(session, user.id, user.username, email)

        return then

    def _upsert(self) -> Any:
        return (postgresql if not self.db.is_sqlite else sqlite).insert(UserEmail)

    async def start_verification(
        self, session: AsyncSession, user_id: int, username: str, email: str
    ) -> str:
        """In ``session``'s transaction: make ``email`` the user's (unverified) address and
        queue the mail with its verification link. Returns the token."""
        upsert = self._upsert().values(
            user_id=user_id,
            email=email,
            verified_key=None,
            reset_mail_1=0.0,
            reset_mail_2=0.0,
            reset_mail_3=0.0,
        )
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=[UserEmail.user_id], set_={"email": email, "verified_key": None}
            )
        )
        ttl = float(self.config["EMAIL_VERIFY_TTL"])
        token = await issue_token(session, user_id, VERIFY, self.clock() + ttl, email=email)
        await queue_mail(
            session,
            recipient=email,
            template="verify_email",
            context={
                "username": username,
                "email": email,
                "token": token,
                "link": link(self.config.get("EMAIL_VERIFY_URL"), token),
                "ttl_hours": max(1, round(ttl / 3600)),
            },
            user_id=user_id,
        )
        return token

    @retry_conflicts()
    async def prune_tokens(self, now: float) -> int:
        """Delete expired tokens (they are refused anyway); returns how many."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(RecoveryToken).where(RecoveryToken.expires_at <= now)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def email_of(self, user_id: int) -> EmailState | None:
        async with self.db.session() as session:
            row = await session.get(UserEmail, user_id)
            if row is None:
                return None
            return EmailState(row.email, row.verified_key is not None)

    @retry_conflicts()
    async def change_email(
        self, user_id: int, username: str, email: str, client: Client = NO_CLIENT
    ) -> None:
        """A new, unverified address; the verified one it replaces gets a notice."""
        async with recording(self.db) as tx:
            session = tx.session
            # A write first (see store/users.py): lock the row, read the old address.
            old = (
                await session.execute(
                    update(UserEmail)
                    .where(UserEmail.user_id == user_id)
                    .values(email=UserEmail.email)
                    .returning(UserEmail.email, UserEmail.verified_key)
                )
            ).first()
            await self.start_verification(session, user_id, username, email)
            if old is not None and old.verified_key is not None and old.email != email:
                await queue_notification(
                    session, user_id, "email_changed", {"new address": email}, recipient=old.email
                )
            await tx.record(SecurityEvent(EMAIL_CHANGED, user_id=user_id, client=client))

    @retry_conflicts()
    async def verify_email(self, token: str, client: Client = NO_CLIENT) -> bool:
        """Use a verification token; False when it is unknown, used, expired or for an
        address the user has replaced since. :class:`EmailTaken` when another account
        verified the address first (the token is then left unused)."""
        now = self.clock()
        try:
            async with recording(self.db) as tx:
                session = tx.session
                row = await use_up_token(session, token, VERIFY)
                if row is None or row.expires_at <= now or row.email is None:
                    return False
                done = await session.execute(
                    update(UserEmail)
                    .where(UserEmail.user_id == row.user_id, UserEmail.email == row.email)
                    .values(verified_key=email_key(row.email))
                    .returning(UserEmail.user_id)
                )
                if done.scalar() is None:
                    return False
                await tx.record(SecurityEvent(EMAIL_VERIFIED, user_id=row.user_id, client=client))
                return True
        except IntegrityError:
            raise EmailTaken from None

    @retry_conflicts()
    async def request_reset(
        self, *, username_key: str | None, address: str | None, client: Client = NO_CLIENT
    ) -> bool:
        """Queue a reset mail to the account's verified address, unless it has had three
        within the hour; False when nothing is sent (no such account, no verified
        address, or the limit). The limit and the mail are one transaction."""
        now = self.clock()
        if username_key is not None:
            account = select(User.id).where(User.username_key == username_key)
            owner = UserEmail.user_id == account.scalar_subquery()
        elif address is not None:
            owner = UserEmail.verified_key == email_key(address)
        else:
            return False
        async with recording(self.db) as tx:
            session = tx.session
            # The per-account limit, decided atomically by the write that records the mail.
            row = (
                await session.execute(
                    update(UserEmail)
                    .where(
                        owner,
                        UserEmail.verified_key.is_not(None),
                        UserEmail.reset_mail_1 <= now - RESET_MAIL_WINDOW,
                    )
                    .values(
                        reset_mail_1=UserEmail.reset_mail_2,
                        reset_mail_2=UserEmail.reset_mail_3,
                        reset_mail_3=now,
                    )
                    .returning(UserEmail.user_id, UserEmail.email)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if row is None:
                return False
            user = await session.get(User, row.user_id)
            if user is None:
                return False
            ttl = float(self.config["PASSWORD_RESET_TTL"])
            token = await issue_token(
                session, user.id, RESET, now + ttl, stamp=password_stamp(user.password_hash)
            )
            await queue_mail(
                session,
                recipient=row.email,
                template="password_reset",
                context={
                    "username": user.username,
                    "token": token,
                    "link": link(self.config.get("PASSWORD_RESET_URL"), token),
                    "ttl_minutes": max(1, round(ttl / 60)),
                },
                user_id=user.id,
            )
            await tx.record(SecurityEvent(RESET_REQUESTED, user_id=user.id, client=client))
            return True

    async def reset_target(self, token: str) -> ResetTarget | None:
        """The account a reset token is good for now, without using it up."""
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(RecoveryToken.password_stamp, User.id, User.username, User.password_hash)
                    .join(User, User.id == RecoveryToken.user_id)
                    .where(
                        RecoveryToken.token_hash == token_digest(token),
                        RecoveryToken.purpose == RESET,
                        RecoveryToken.expires_at > self.clock(),
                    )
                )
            ).first()
        if row is None or row.password_stamp != password_stamp(row.password_hash):
            return None
        return ResetTarget(row.id, row.username, row.password_hash)

    def spend_reset_token(self, token: str, user_id: int) -> Callable[[Recording], Awaitable[None]]:
        """What a reset runs inside the transaction that sets the new password and ends
        every session: use the token up, check it is still good for ``user_id`` (not
        expired, issued under the password still set), void the user's other tokens and
        queue the notice. Raises :class:`TokenInvalid`, rolling the reset back."""

        async def spend(tx: Recording) -> None:
            session = tx.session
            row = await use_up_token(session, token, RESET)
            if row is None or row.user_id != user_id or row.expires_at <= self.clock():
                raise TokenInvalid
            current = select(User.password_hash).where(User.id == user_id)
            if not self.db.is_sqlite:  # SQLite's writer holds the whole file already
                current = current.with_for_update()
            password_hash = await session.scalar(current)
            if password_hash is None or password_stamp(password_hash) != row.password_stamp:
                raise TokenInvalid
            # The reset's event ("password_reset") queues its notice.
            await session.execute(delete(RecoveryToken).where(RecoveryToken.user_id == user_id))

        return spend


@bounded_store
class SigninNotices:
    """``NOTIFY_NEW_SIGNIN``: a notice when an account with a verified address signs in
    from a client (its User-Agent) none of its earlier logins came from."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @retry_conflicts()
    async def note(self, user_id: int, client: Client, session_id: str) -> bool:
        """Check the login of ``session_id`` (already recorded); True when noticed."""
        async with recording(self.db) as tx:
            session = tx.session
            # A write first (see store/users.py); no verified address: nothing to do.
            address = await session.scalar(
                update(UserEmail)
                .where(UserEmail.user_id == user_id, UserEmail.verified_key.is_not(None))
                .values(email=UserEmail.email)
                .returning(UserEmail.email)
            )
            if address is None:
                return False
            earlier = and_(
                SecurityEventRow.user_id == user_id,
                SecurityEventRow.event == LOGIN,
                or_(
                    SecurityEventRow.session_id.is_(None),
                    SecurityEventRow.session_id != session_id,
                ),
            )
            logins = await session.scalar(select(func.count()).where(earlier))
            same = await session.scalar(
                select(func.count()).where(
                    earlier, SecurityEventRow.user_agent == client.user_agent
                )
            )
            if not logins or same:
                return False  # the first login ever, or a client seen before
            # Its notice is queued with the event (quart_app.mail.notify.EVENT_NOTICES).
            await tx.record(
                SecurityEvent(NEW_SIGNIN, user_id=user_id, session_id=session_id, client=client)
            )
            return True


def init_recovery(app: Quart, db: Database, sender: MailSender) -> RecoveryStore:
    store = RecoveryStore(db, app.config, sender, clock=get_manager(app).now)
    app.extensions[EXTENSION_KEY] = store
    return store


def recovery_store(app: Quart | None = None) -> RecoveryStore:
    store: RecoveryStore = (app if app is not None else current_app).extensions[EXTENSION_KEY]
    return store
