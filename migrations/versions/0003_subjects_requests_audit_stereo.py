"""Data subjects (keyed number hash, redaction), request register, do-not-record list,
the append-only audit trail, withdrawal by keypress, and stereo recordings.

The audit trail is append-only in the database itself: a trigger refuses UPDATE and DELETE
on both PostgreSQL and SQLite, and on PostgreSQL the role running this migration (the
service's role) gives up its own UPDATE, DELETE and TRUNCATE rights on the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)

_PG_APPEND_ONLY = [
    """
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """,
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER",
]

_SQLITE_APPEND_ONLY = [
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END
    """,
]


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(
            sa.Column(
                "layout", sa.String(length=16), nullable=False, server_default="mixed"
            )
        )
    with op.batch_alter_table("routes") as batch:
        batch.add_column(
            sa.Column(
                "offer_withdrawal", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("caller_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("redaction", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("redacted_at", UTC_DATETIME, nullable=True))
        batch.create_index(batch.f("ix_calls_caller_key"), ["caller_key"], unique=False)
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("caller_key", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_consents_caller_key"), ["caller_key"], unique=False)

    op.create_table(
        "dsar_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("subject_key", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=True),
        sa.Column("number_masked", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("due_at", UTC_DATETIME, nullable=False),
        sa.Column("opened_by", sa.String(length=128), nullable=False),
        sa.Column("handled_by", sa.String(length=128), nullable=True),
        sa.Column("handled_at", UTC_DATETIME, nullable=True),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("export_path", sa.Text(), nullable=True),
        sa.Column("export_expires_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dsar_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_dsar_requests_reference")),
    )
    op.create_index(op.f("ix_dsar_requests_due_at"), "dsar_requests", ["due_at"])
    op.create_index(op.f("ix_dsar_requests_status"), "dsar_requests", ["status"])
    op.create_index(op.f("ix_dsar_requests_subject_key"), "dsar_requests", ["subject_key"])

    op.create_table(
        "do_not_record",
        sa.Column("subject_key", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("subject_key", name=op.f("pk_do_not_record")),
    )

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index(op.f("ix_audit_log_target"), "audit_log", ["target"])
    statements = (
        _PG_APPEND_ONLY if op.get_bind().dialect.name == "postgresql" else _SQLITE_APPEND_ONLY
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("GRANT UPDATE, DELETE, TRUNCATE ON audit_log TO CURRENT_USER")
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_delete")
        op.execute("DROP TRIGGER audit_log_no_update")
    op.drop_index(op.f("ix_audit_log_target"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("do_not_record")
    op.drop_index(op.f("ix_dsar_requests_subject_key"), table_name="dsar_requests")
    op.drop_index(op.f("ix_dsar_requests_status"), table_name="dsar_requests")
    op.drop_index(op.f("ix_dsar_requests_due_at"), table_name="dsar_requests")
    op.drop_table("dsar_requests")
    with op.batch_alter_table("consents") as batch:
        batch.drop_index(batch.f("ix_consents_caller_key"))
        batch.drop_column("caller_key")
    with op.batch_alter_table("calls") as batch:
        batch.drop_index(batch.f("ix_calls_caller_key"))
        batch.drop_column("redacted_at")
        batch.drop_column("redaction")
        batch.drop_column("caller_key")
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("offer_withdrawal")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("layout")
