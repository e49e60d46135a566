"""Copies on several backends, per-recording data keys, tombstones, legal hold, and a
per-route jurisdiction requirement.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("routes") as batch:
        batch.add_column(sa.Column("require_jurisdiction", sa.String(length=2), nullable=True))

    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("held_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("held_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("delete_reason", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("delete_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("delete_actor", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("delete_requested_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("deleted_at", UTC_DATETIME, nullable=True))

    op.create_table(
        "recording_copies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recording_id", sa.String(length=36), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("sidecar_key", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("verified_at", UTC_DATETIME, nullable=True),
        sa.Column("deleted_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_recording_copies_recording_id_recordings"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_copies")),
        sa.UniqueConstraint(
            "recording_id", "backend", name="uq_recording_copies_recording_backend"
        ),
    )
    op.create_index(
        op.f("ix_recording_copies_recording_id"),
        "recording_copies",
        ["recording_id"],
        unique=False,
    )
    op.create_index("ix_recording_copies_status", "recording_copies", ["status"], unique=False)

    op.create_table(
        "data_keys",
        sa.Column("recording_id", sa.String(length=36), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("rotated_at", UTC_DATETIME, nullable=True),
        sa.Column("destroyed_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_data_keys_recording_id_recordings"),
        ),
        sa.PrimaryKeyConstraint("recording_id", name=op.f("pk_data_keys")),
    )

    op.create_table(
        "tombstones",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recording_id", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=False),
        sa.Column("retain_until", UTC_DATETIME, nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("deleted_where", sa.Text(), nullable=False),
        sa.Column("requested_at", UTC_DATETIME, nullable=False),
        sa.Column("deleted_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tombstones")),
    )
    op.create_index(op.f("ix_tombstones_call_id"), "tombstones", ["call_id"], unique=False)
    op.create_index(
        op.f("ix_tombstones_recording_id"), "tombstones", ["recording_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tombstones_recording_id"), table_name="tombstones")
    op.drop_index(op.f("ix_tombstones_call_id"), table_name="tombstones")
    op.drop_table("tombstones")
    op.drop_table("data_keys")
    op.drop_index("ix_recording_copies_status", table_name="recording_copies")
    op.drop_index(op.f("ix_recording_copies_recording_id"), table_name="recording_copies")
    op.drop_table("recording_copies")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("delete_requested_at")
        batch.drop_column("delete_actor")
        batch.drop_column("delete_note")
        batch.drop_column("delete_reason")
        batch.drop_column("held_by")
        batch.drop_column("held_at")
        batch.drop_column("hold_reason")
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("require_jurisdiction")
