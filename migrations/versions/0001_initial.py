"""Initial schema.

Recordings (storage layer); routes, extensions, retention classes, calls and consents
(call layer).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# storage.models.UTCDateTime is this on every backend; migrations stay frozen in plain types.
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("linkedid", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=True),
        sa.Column("did", sa.String(length=64), nullable=False),
        sa.Column("extension", sa.String(length=64), nullable=True),
        sa.Column("announcement", sa.String(length=16), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("answered_at", UTC_DATETIME, nullable=True),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("disposition", sa.String(length=16), nullable=True),
        sa.Column("hangup_cause", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_calls_channel_id")),
    )
    op.create_index(op.f("ix_calls_caller"), "calls", ["caller"], unique=False)
    op.create_index(op.f("ix_calls_ended_at"), "calls", ["ended_at"], unique=False)
    op.create_index(op.f("ix_calls_linkedid"), "calls", ["linkedid"], unique=False)
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"], unique=False)

    op.create_table(
        "extensions",
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("recording", sa.String(length=16), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_extensions")),
    )

    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("asterisk_name", sa.String(length=128), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=False),
        sa.Column("retention_days", sa.BigInteger(), nullable=False),
        sa.Column("retain_until", UTC_DATETIME, nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("spool_path", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("stored_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("asterisk_name", name=op.f("uq_recordings_asterisk_name")),
    )
    op.create_index(op.f("ix_recordings_call_id"), "recordings", ["call_id"], unique=False)
    op.create_index("ix_recordings_status", "recordings", ["status"], unique=False)
    op.create_index(
        op.f("ix_recordings_retain_until"), "recordings", ["retain_until"], unique=False
    )

    op.create_table(
        "retention_classes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("days", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_retention_classes")),
    )

    op.create_table(
        "routes",
        sa.Column("did", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("announcement", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("timeout_means", sa.String(length=16), nullable=False),
        sa.Column("prompt_timeout_s", sa.Integer(), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("did", name=op.f("pk_routes")),
    )

    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("digit", sa.String(length=1), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("prompt_name", sa.String(length=64), nullable=True),
        sa.Column("prompt_version", sa.String(length=64), nullable=True),
        sa.Column("prompt_sha256", sa.String(length=64), nullable=True),
        sa.Column("prompt_text_sha256", sa.String(length=64), nullable=True),
        sa.Column("times_played", sa.Integer(), nullable=False),
        sa.Column("evidence_recording_id", sa.String(length=36), nullable=True),
        sa.Column("prompt_started_at", UTC_DATETIME, nullable=True),
        sa.Column("decided_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_consents_call_id_calls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("call_id", name=op.f("uq_consents_call_id")),
    )
    op.create_index(op.f("ix_consents_caller"), "consents", ["caller"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_consents_caller"), table_name="consents")
    op.drop_table("consents")
    op.drop_table("routes")
    op.drop_table("retention_classes")
    op.drop_index(op.f("ix_recordings_retain_until"), table_name="recordings")
    op.drop_index("ix_recordings_status", table_name="recordings")
    op.drop_index(op.f("ix_recordings_call_id"), table_name="recordings")
    op.drop_table("recordings")
    op.drop_table("extensions")
    op.drop_index(op.f("ix_calls_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_linkedid"), table_name="calls")
    op.drop_index(op.f("ix_calls_ended_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_caller"), table_name="calls")
    op.drop_table("calls")
