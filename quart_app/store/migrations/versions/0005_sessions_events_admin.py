"""Sessions, security events and administration: the ``sessions`` and
``security_events`` tables, and the users' ``role``, ``disabled`` and
``credential_epoch`` columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("role", sa.String(length=16), nullable=False, server_default="user"),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("credential_epoch", sa.Integer(), nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A schema adopted from create_all (see migrate.BASELINE) may have them already.
    present = {column["name"] for column in inspector.get_columns("users")}
    missing = [column for column in _user_columns() if column.name not in present]
    if missing:
        with op.batch_alter_table("users") as batch:
            for column in missing:
                batch.add_column(column)
    if inspector.has_table("sessions"):
        return
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_used_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=256), nullable=False),
        sa.Column("current_jti", sa.String(length=64), nullable=False),
        sa.Column("previous_jti", sa.String(length=64), nullable=True),
        sa.Column("rotated_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("ended_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_user_id_last_used_at", "sessions", ["user_id", "last_used_at"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=256), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
    )
    op.create_index("ix_security_events_user_id_time", "security_events", ["user_id", "time"])
    op.create_index("ix_security_events_time", "security_events", ["time"])


def downgrade() -> None:
    op.drop_index("ix_security_events_time", table_name="security_events")
    op.drop_index("ix_security_events_user_id_time", table_name="security_events")
    op.drop_table("security_events")
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    op.drop_index("ix_sessions_user_id_last_used_at", table_name="sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("credential_epoch")
        batch.drop_column("disabled")
        batch.drop_column("role")
