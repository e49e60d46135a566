"""An index on recordings (status, id): the purge resumes unfinished deletions in id
order, and without it SQLite, with statistics, walks the primary key past every deleted
recording rather than sort the few deleting ones (bench/README.md, finding 6).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_recordings_status_id", "recordings", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_recordings_status_id", table_name="recordings")
