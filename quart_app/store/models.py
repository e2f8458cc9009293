"""The schema: users and the shared revocation log."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, MetaData, String
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
    #: Failed logins in a row, and the time (epoch seconds) until which logins are refused.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)


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


class LoginSource(Base):
    """Failed and successful logins of one account from one client network.

    The per-account lock (``users.failed_logins``/``locked_until``) stops guessing spread
    over many addresses; this row adds a lock per (account, source) and remembers
    sources that logged in successfully, which the account lock does not apply to: an
    attacker elsewhere cannot keep the owner out (see quart_app/security/lockout.py).
    """

    __tablename__ = "login_sources"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: The client address as throttling counts it: IPv4, or an IPv6 /64.
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Until when a success from this source exempts it from the account lock.
    trusted_until: Mapped[float | None] = mapped_column(Float, nullable=True)
