"""Four eyes for access to personal data (issue 10): an approval may be about a user, an
admin's change that widens their access (a new supervisor, a role, extensions, unmask,
re-enabling, a supervisor's password reset), waiting for a dpo.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dsar_approvals") as batch:
        batch.add_column(sa.Column("user_name", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("user_change", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dsar_approvals") as batch:
        batch.drop_column("user_change")
        batch.drop_column("user_name")
