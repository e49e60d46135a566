"""Outbound routes (issue 11): what the callee of an agent's call out hears, by the
dialled number's prefix, and the trunk it is dialled over.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbound_routes",
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("announcement", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("timeout_means", sa.String(length=16), nullable=False),
        sa.Column("prompt_timeout_s", sa.Integer(), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=False),
        sa.Column("dial_template", sa.String(length=128), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_outbound_routes")),
    )


def downgrade() -> None:
    op.drop_table("outbound_routes")
