"""Ring groups (issue 11): extensions a route rings at once or in turn, each for its own
seconds, named so several routes share one (a route's target ``group:NAME``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ring_groups",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=8), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ring_groups")),
    )


def downgrade() -> None:
    op.drop_table("ring_groups")
