"""The consent proof keeps when the disclosure's first audio came and every key of the
dialogue, early ones included: a key pressed before the disclosure began is not an
answer, but it must stay visible.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("disclosure_started_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("answer_to_disclosure_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("key_history", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("key_history")
        batch.drop_column("answer_to_disclosure_s")
        batch.drop_column("disclosure_started_at")
