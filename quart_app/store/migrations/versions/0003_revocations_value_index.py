"""Revocations: an index on ``value``, for refresh's authoritative session check.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A schema adopted from create_all (see migrate.BASELINE) may have it already.
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("revocations")}
    if "ix_revocations_value" in existing:
        return
    op.create_index(op.f("ix_revocations_value"), "revocations", ["value"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_revocations_value"), table_name="revocations")
