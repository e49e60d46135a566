"""Indexes for the call search (pbx_bridge/calls/search.py): newest first by keyset
(started_at, id), each filter it drives by as an equality range ending in (started_at, id),
so a page at 1,000,000 calls reads about a page of index entries, on SQLite and
PostgreSQL. The single-column indexes on started_at, caller and caller_key are the
leading columns of the new ones and go.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = {
    "ix_calls_started_at_id": ["started_at", "id"],
    "ix_calls_caller_key_started_at": ["caller_key", "started_at", "id"],
    "ix_calls_caller_started_at": ["caller", "started_at", "id"],
    "ix_calls_did_started_at": ["did", "started_at", "id"],
    "ix_calls_extension_started_at": ["extension", "started_at", "id"],
    "ix_calls_disposition_started_at": ["disposition", "started_at", "id"],
    "ix_calls_direction_started_at": ["direction", "started_at", "id"],
}
OLD = {
    "ix_calls_started_at": ["started_at"],
    "ix_calls_caller": ["caller"],
    "ix_calls_caller_key": ["caller_key"],
}


LIVE = "ix_calls_live_started_at"
DECISION = "ix_consents_decision_call_id"


def upgrade() -> None:
    for name, columns in NEW.items():
        op.create_index(name, "calls", columns)
    # PostgreSQL does not take "disposition IS NULL" as an equality keeping started_at
    # in order; live calls (few) get a partial index of their own.
    live = sa.text("disposition IS NULL")
    op.create_index(LIVE, "calls", ["started_at", "id"], sqlite_where=live,
                    postgresql_where=live)
    # A rare consent answer (withdrawn) is found from its few consent rows, not by
    # walking every call: this index counts and lists them.
    op.create_index(DECISION, "consents", ["decision", "call_id"])
    for name in OLD:
        op.drop_index(name, table_name="calls")


def downgrade() -> None:
    op.drop_index(DECISION, table_name="consents")
    for name, columns in OLD.items():
        op.create_index(name, "calls", columns)
    for name in (*NEW, LIVE):
        op.drop_index(name, table_name="calls")
