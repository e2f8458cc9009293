"""Recovery: users' email addresses, password-reset and verification tokens, the mail
outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_emails",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("verified_key", sa.String(length=320), nullable=True),
        sa.Column("reset_mail_1", sa.Float(), nullable=False),
        sa.Column("reset_mail_2", sa.Float(), nullable=False),
        sa.Column("reset_mail_3", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_emails_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_emails")),
        sa.UniqueConstraint("verified_key", name=op.f("uq_user_emails_verified_key")),
    )
    op.create_table(
        "recovery_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("password_stamp", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_recovery_tokens")),
    )
    op.create_index(op.f("ix_recovery_tokens_user_id"), "recovery_tokens", ["user_id"])
    op.create_index(op.f("ix_recovery_tokens_expires_at"), "recovery_tokens", ["expires_at"])
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.Float(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_mail_outbox_message_id")),
    )
    op.create_index("ix_mail_outbox_state_next", "mail_outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_state_next", table_name="mail_outbox")
    op.drop_table("mail_outbox")
    op.drop_index(op.f("ix_recovery_tokens_expires_at"), table_name="recovery_tokens")
    op.drop_index(op.f("ix_recovery_tokens_user_id"), table_name="recovery_tokens")
    op.drop_table("recovery_tokens")
    op.drop_table("user_emails")
