"""The schema: users, their sessions and security events, the shared revocation log,
login limits and second factors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Deterministic constraint names, so migrations can refer to them on every engine.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: As registered (NFKC-normalised); shown back to clients.
    username: Mapped[str] = mapped_column(String(64))
    #: Case-folded username: the database enforces uniqueness without regard to case.
    username_key: Mapped[str] = mapped_column(String(256), unique=True)
    password_hash: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: "admin" or "user": read from here at every admin request (never from a token).
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    #: A disabled account cannot log in, refresh or keep a session.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Bumped by every change that ends all sessions (password change, disabling): a
    #: login creates its session only if the epoch it read before its password check is
    #: still the current one, in the transaction that creates it (no clock is compared).
    credential_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SessionRow(Base):
    """One login: its refresh-token family (``id`` is the tokens' ``fam`` claim).

    Times are epoch seconds. ``current_jti`` is the one refresh token of the session that
    may be spent; ``previous_jti`` the one it replaced at ``rotated_at`` (the refresh
    grace). A session lives while ``ended_at`` is NULL, it has been refreshed within the
    idle timeout, and ``expires_at`` (its absolute end) is ahead.
    """

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    client: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    current_jti: Mapped[str] = mapped_column(String(64))
    previous_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rotated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (
        # A user's live sessions, least recently used first (SESSION_LIMIT, listing).
        Index("ix_sessions_user_id_last_used_at", "user_id", "last_used_at"),
        # Pruning ended and expired sessions.
        Index("ix_sessions_expires_at", "expires_at"),
    )


class SecurityEventRow(Base):
    """One security event (login, refresh, session ended, ...), written in the same
    transaction as what it records. ``time`` is epoch seconds."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[float] = mapped_column(Float)
    event: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        Index("ix_security_events_user_id_time", "user_id", "time"),
        Index("ix_security_events_time", "time"),
    )


class RevocationRow(Base):
    """One revoked token, token family, or "every token of user X issued before T"."""

    __tablename__ = "revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: "jti:<jti>", "family:<id>" or "user:<id>:<random>": unique, so a jti is used once.
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(256))
    not_before: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_revocations_expires_at", "expires_at"),
        Index("ix_revocations_created_at", "created_at"),
        # Refresh asks the store whether a user entry ends its session (by sub).
        Index("ix_revocations_value", "value"),
    )


class UserEmail(Base):
    """A user's email address (optional), and the state of its reset mails."""

    __tablename__ = "user_emails"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: As given by the user; mail goes there once it is verified.
    email: Mapped[str] = mapped_column(String(320))
    #: The case-folded address once verified, NULL before: a verified address belongs to
    #: one account only (NULLs never collide in a unique index, on every engine).
    verified_key: Mapped[str | None] = mapped_column(String(320), unique=True, nullable=True)
    #: Epoch seconds of the last three reset mails, oldest first (0: none): a fourth is
    #: queued only when the oldest is an hour old, decided by one conditional UPDATE.
    reset_mail_1: Mapped[float] = mapped_column(Float, default=0.0)
    reset_mail_2: Mapped[float] = mapped_column(Float, default=0.0)
    reset_mail_3: Mapped[float] = mapped_column(Float, default=0.0)


class RecoveryToken(Base):
    """A mailed password-reset or email-verification token, stored as its SHA-256 only."""

    __tablename__ = "recovery_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: "reset" or "verify".
    purpose: Mapped[str] = mapped_column(String(16))
    #: verify: the address it verifies (the token dies if the user changes it meanwhile).
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    #: reset: SHA-256 of the password hash it was issued under (a password change voids it).
    password_stamp: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class OutboxMail(Base):
    """A mail to send: written in the transaction that decided it, sent by the sender."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Set once when queued: every attempt sends the same Message-ID.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    #: The template's name (quart_app/mail/templates) and its context as JSON; the
    #: context (it may hold a token) is emptied once the mail is sent.
    template: Mapped[str] = mapped_column(String(64))
    context: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: "pending", "sent" or "failed" (refused for good by the mail server).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    #: The sender that holds the mail until ``claimed_until`` (a lease: a sender that died
    #: lets go of it by then).
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    __table_args__ = (Index("ix_mail_outbox_state_next", "state", "next_attempt_at"),)


class LoginLimit(Base):
    """One counter of failed password checks: an account, an (account, client network)
    pair, or a client network across accounts (see quart_app/security/login_limits.py).

    ``key`` is a SHA-256 of what is counted (the case-folded username, the network), so
    any username or client address, however long, makes a 64-character key, and the
    table holds neither. Every decision is one ``INSERT ... ON CONFLICT DO UPDATE ...
    RETURNING`` statement (quart_app/store/login_limits.py).
    """

    __tablename__ = "login_limits"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Failed (or in-flight) checks counted since ``since``.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: Epoch seconds: the last counted check (back-off), or the window's start (block).
    since: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The decision of the latest reservation, read back by the statement that made it.
    admitted: Mapped[bool] = mapped_column(Boolean, default=True)
    #: (account, network) pairs only: until when a success exempts the network from the
    #: account lock.
    trusted_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: When the row decides nothing any more (``quart-app prune`` deletes it then).
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class OAuthClient(Base):
    """A service allowed the client_credentials grant (``quart-app create-client``).

    The secret is never stored: ``secret_hash`` is ``sha256$<hex>`` of a generated
    256-bit secret (a slow hash adds nothing to a secret that cannot be guessed).
    """

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When the secret was last set (creation or rotation).
    rotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DPoPProof(Base):
    """A DPoP proof accepted once (RFC 9449 section 11.1): its (key, jti) digest, kept
    until the proof would be refused as too old anyway."""

    __tablename__ = "dpop_proofs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class TotpFactor(Base):
    """A user's TOTP secret (encrypted, quart_app/accounts/crypto.py), pending until a code
    confirms it. ``last_step`` is the newest time step accepted: a code is accepted only
    by the compare-and-set that raises it, so each code works once, on any worker."""

    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(Text)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class RecoveryCode(Base):
    """One single-use recovery code, stored as a SHA-256 of the code (128 random bits)."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class MfaTicket(Base):
    """A single-use secret with an expiry: the ``mfa_token`` between the password and the
    code, or a WebAuthn challenge. ``key`` is a SHA-256 of the secret; using it is one
    ``DELETE ... RETURNING``, so it is used once on any worker or host."""

    __tablename__ = "mfa_tickets"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: "login", "webauthn-register" or "webauthn-login".
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    #: The login ticket: the user's credential epoch read before the password check (a
    #: password change or a disable meanwhile voids the login).
    epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class Passkey(Base):
    """A WebAuthn credential of a user (several per user)."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
