"""Campaigns (issue 11): a campaign tag on every call, and the campaigns themselves with
their recording mode and retention class (Headshed Cube records per campaign).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("recording", sa.String(length=16), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("campaign", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_calls_campaign_started_at", "calls", ["campaign", "started_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_calls_campaign_started_at", table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("campaign")
    op.drop_table("campaigns")
