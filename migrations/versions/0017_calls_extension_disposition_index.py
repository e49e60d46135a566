"""The call search's index for a disposition within extensions (a supervisor's busy or
abandoned calls, or one extension's): ``(extension, disposition, started_at, id)``, so
each extension's calls of that disposition are one range in page order. Along
``ix_calls_extension_started_at`` alone every call of the extension was read to check its
disposition: for a rare one (busy: 4 %) about 25 rows per row shown.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_calls_extension_disposition_started_at"


def upgrade() -> None:
    op.create_index(INDEX, "calls", ["extension", "disposition", "started_at", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="calls")
