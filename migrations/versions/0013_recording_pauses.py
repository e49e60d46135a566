"""PCI pauses (issue 11): each muted span of a conversation recording, as offsets into
the stored file, with who paused and who (or what: the time limit, the call's end)
resumed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recording_pauses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recording_id", sa.String(length=36), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("paused_by", sa.String(length=128), nullable=False),
        sa.Column("resumed_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name=op.f("fk_recording_pauses_recording_id_recordings"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_pauses")),
    )
    op.create_index(
        op.f("ix_recording_pauses_recording_id"), "recording_pauses", ["recording_id"]
    )


def downgrade() -> None:
    op.drop_table("recording_pauses")
