"""An index on recordings (status, retain_until): the oldest overdue recording of one
status is one step along it, however many long-deleted recordings (which keep their
retain_until) lie before it in the plain retain_until index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_recordings_status_retain_until", "recordings", ["status", "retain_until"]
    )


def downgrade() -> None:
    op.drop_index("ix_recordings_status_retain_until", table_name="recordings")
