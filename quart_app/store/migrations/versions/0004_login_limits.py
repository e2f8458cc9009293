"""Login limits: one table of hashed counters for the account lock, the (account,
network) lock and the per-network block, decided atomically; the per-user columns and
``login_sources`` it replaces are dropped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_USER_COLUMNS = ("failed_logins", "locked_until")


def upgrade() -> None:
    op.create_table(
        "login_limits",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        sa.Column("trusted_until", sa.Float(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_limits")),
    )
    op.create_index(op.f("ix_login_limits_expires_at"), "login_limits", ["expires_at"])
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table("login_sources"):
        op.drop_table("login_sources")
    # A schema adopted from create_all (see migrate.BASELINE) may lack them already.
    present = {column["name"] for column in inspector.get_columns("users")}
    dropped = [name for name in OLD_USER_COLUMNS if name in present]
    if dropped:
        with op.batch_alter_table("users") as batch:
            for name in dropped:
                batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("locked_until", sa.Float(), nullable=True))
    op.create_table(
        "login_sources",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.Float(), nullable=True),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("trusted_until", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_sources_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "source", name=op.f("pk_login_sources")),
    )
    op.drop_index(op.f("ix_login_limits_expires_at"), table_name="login_limits")
    op.drop_table("login_limits")
