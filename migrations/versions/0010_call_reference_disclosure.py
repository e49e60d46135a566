"""The truthful disclosure (issue 11): each call's reference number (unique, quoted by
callers in requests), the prompt segments a caller heard (the disclosure is composed per
route, so the proof lists every segment's version and sha256), and a route's language
choice (the languages offered and their keys, or the caller's country).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCE_INDEX = "ux_calls_reference"


def upgrade() -> None:
    # Calls made before this version have no reference (NULL; NULLs never collide).
    op.add_column("calls", sa.Column("reference", sa.String(length=9), nullable=True))
    op.create_index(REFERENCE_INDEX, "calls", ["reference"], unique=True)
    op.add_column("consents", sa.Column("prompt_segments", sa.Text(), nullable=True))
    op.add_column("routes", sa.Column("languages", sa.String(length=128), nullable=True))
    op.add_column("routes", sa.Column("language_keys", sa.String(length=64), nullable=True))
    op.add_column(
        "routes",
        sa.Column("language_by_country", sa.Boolean(), nullable=False,
                  server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("language_by_country")
        batch.drop_column("language_keys")
        batch.drop_column("languages")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("prompt_segments")
    op.drop_index(REFERENCE_INDEX, table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("reference")
