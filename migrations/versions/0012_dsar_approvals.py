"""Four eyes for the DSAR register (issue 10): approvals (who asked for an erasure, a bulk
export or an un-hold, when, and who approved or refused it), and the subject's own
reference on a request.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dsar_approvals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("recording_id", sa.String(length=36), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requester_user_id", sa.String(length=36), nullable=False),
        sa.Column("requested_at", UTC_DATETIME, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", UTC_DATETIME, nullable=True),
        sa.Column("refuse_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["dsar_requests.id"],
            name=op.f("fk_dsar_approvals_request_id_dsar_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name=op.f("fk_dsar_approvals_recording_id_recordings"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dsar_approvals")),
    )
    op.create_index(op.f("ix_dsar_approvals_request_id"), "dsar_approvals", ["request_id"])
    op.create_index(op.f("ix_dsar_approvals_state"), "dsar_approvals", ["state"])
    with op.batch_alter_table("dsar_requests") as batch:
        batch.add_column(sa.Column("their_reference", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dsar_requests") as batch:
        batch.drop_column("their_reference")
    op.drop_table("dsar_approvals")
