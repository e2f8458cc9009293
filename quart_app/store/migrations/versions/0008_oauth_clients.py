"""OAuth clients (client_credentials grant) and accepted DPoP proofs (replay check).

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oauth_clients")),
    )
    op.create_table(
        "dpop_proofs",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_dpop_proofs")),
    )
    op.create_index(op.f("ix_dpop_proofs_expires_at"), "dpop_proofs", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dpop_proofs_expires_at"), table_name="dpop_proofs")
    op.drop_table("dpop_proofs")
    op.drop_table("oauth_clients")
