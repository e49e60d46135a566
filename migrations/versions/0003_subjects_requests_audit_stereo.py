"""Data subjects (keyed number hash, redaction), request register, do-not-record list,
the append-only audit trail, withdrawal by keypress, stereo recordings, the progress
of unfinished deletions, and sidecars to rewrite.

The audit trail is append-only in the database itself: triggers refuse UPDATE, DELETE
(and, on SQLite, an INSERT that would replace an entry) on both PostgreSQL and SQLite, and
on PostgreSQL every role holding UPDATE, DELETE or TRUNCATE on the table loses it,
including the role running this migration (the service's role). The chain head
(``audit_head``, one row) may only move forward: it cannot be deleted or rewound.

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

GENESIS = "0" * 64


def _pg_revoke_from_everyone(table: str, privileges: str) -> list[str]:
    """REVOKE from PUBLIC, from this role, and from every role granted them before
    (e.g. by ``ALTER DEFAULT PRIVILEGES`` when a separate owner role runs migrations)."""
    wanted = ", ".join(f"'{p.strip()}'" for p in privileges.split(","))
    return [
        f"REVOKE {privileges} ON {table} FROM PUBLIC",
        f"REVOKE {privileges} ON {table} FROM CURRENT_USER",
        f"""
        DO $$
        DECLARE grantee_name text;
        BEGIN
            FOR grantee_name IN
                SELECT DISTINCT CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                                     ELSE quote_ident(r.rolname) END
                FROM pg_class c
                CROSS JOIN LATERAL aclexplode(c.relacl) acl
                LEFT JOIN pg_roles r ON r.oid = acl.grantee
                WHERE c.oid = '{table}'::regclass AND acl.privilege_type IN ({wanted})
            LOOP
                EXECUTE 'REVOKE {privileges} ON {table} FROM ' || grantee_name;
            END LOOP;
        END
        $$
        """,
    ]


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
    *_pg_revoke_from_everyone("audit_log", "UPDATE, DELETE, TRUNCATE"),
    """
    CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.seq >= OLD.seq THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_head only moves forward: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_head_no_rewind BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()
    """,
    """
    CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward_only()
    """,
    *_pg_revoke_from_everyone("audit_head", "DELETE, TRUNCATE"),
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
    # INSERT OR REPLACE deletes the old row without firing the DELETE trigger.
    """
    CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
    WHEN EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: replacing an entry refused'); END
    """,
    """
    CREATE TRIGGER audit_head_no_rewind BEFORE UPDATE ON audit_head
    WHEN NEW.id <> OLD.id OR NEW.seq < OLD.seq
    BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward: DELETE refused'); END
    """,
]


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(
            sa.Column(
                "layout", sa.String(length=16), nullable=False, server_default="mixed"
            )
        )
        batch.add_column(sa.Column("delete_progress", sa.Text(), nullable=True))
    with op.batch_alter_table("recording_copies") as batch:
        batch.add_column(sa.Column("sidecar_stale_since", UTC_DATETIME, nullable=True))
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
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    statements = (
        _PG_APPEND_ONLY if op.get_bind().dialect.name == "postgresql" else _SQLITE_APPEND_ONLY
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    # IF EXISTS on what the chain head added: a database migrated with an earlier draft
    # of this revision (no head) can still go down and up again.
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head")
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_rewind ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS audit_head_forward_only()")
        op.execute("GRANT UPDATE, DELETE, TRUNCATE ON audit_log TO CURRENT_USER")
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_rewind")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_replace")
        op.execute("DROP TRIGGER audit_log_no_delete")
        op.execute("DROP TRIGGER audit_log_no_update")
    op.execute("DROP TABLE IF EXISTS audit_head")
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
    with op.batch_alter_table("recording_copies") as batch:
        batch.drop_column("sidecar_stale_since")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("delete_progress")
        batch.drop_column("layout")
