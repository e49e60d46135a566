"""Recording policy per extension per direction and scope (issue 11): inbound/outbound
x internal/external, each always, on-demand or never; NULL keeps the extension's single
``recording`` mode, so every extension records as before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CELLS = ("inbound_internal", "inbound_external", "outbound_internal", "outbound_external")


def upgrade() -> None:
    with op.batch_alter_table("extensions") as batch:
        for name in CELLS:
            batch.add_column(sa.Column(name, sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("extensions") as batch:
        for name in CELLS:
            batch.drop_column(name)
