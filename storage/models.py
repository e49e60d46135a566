"""Recording metadata: the rows that prove what was kept, where, and until when.

The declarative ``Base`` lives here, in the lower layer, so the storage pipeline can ship
on its own; the call models of the upper layer build on the same ``Base`` and one
Alembic history covers both.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pbx-bridge stores UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecordingKind(StrEnum):
    CONVERSATION = "conversation"
    EVIDENCE = "evidence"


class RecordingStatus(StrEnum):
    """Where a recording is in its life; each step is committed before the next starts.

    recording -> finished -> spooled -> prepared -> stored, or failed (Asterisk reported a
    failure, or the file vanished before we fetched it). ``prepared``: checked (and
    transcoded), its sha256 and duration final, its copies being made. A restart resumes
    any row that is not yet ``stored`` or ``failed``. Deletion: stored -> deleting ->
    deleted (every copy gone, the data key destroyed, a tombstone written).
    """

    RECORDING = "recording"
    FINISHED = "finished"
    SPOOLED = "spooled"
    PREPARED = "prepared"
    STORED = "stored"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # The call's UUID. Not a foreign key: the storage layer knows nothing of call rows.
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RecordingStatus.RECORDING.value)
    # The name Asterisk knows the recording by (our recording id, so it is unique).
    asterisk_name: Mapped[str] = mapped_column(String(128), unique=True)
    legal_basis: Mapped[str] = mapped_column(String(32))
    retention_class: Mapped[str] = mapped_column(String(64))
    retention_days: Mapped[int] = mapped_column(BigInteger)
    retain_until: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True, index=True
    )
    format: Mapped[str] = mapped_column(String(16), default="wav")
    # "mixed": one Asterisk recording (the bridge, or a snoop); "stereo": two, one per
    # leg (``storage.legs`` names them), merged into one file caller-left, agent-right.
    layout: Mapped[str] = mapped_column(String(16), default="mixed")
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    spool_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Legal hold: never purged while set (``recordings hold ID --reason``).
    hold_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    held_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Why, when and by whom deletion was asked for (retention, manual, erasure...);
    # committed with the move to ``deleting`` so the tombstone is right after a restart.
    delete_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    delete_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    delete_actor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    delete_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # JSON list of the places other than copies (spool, Asterisk, data key) an unfinished
    # deletion has already cleared, so the tombstone names them after a restart too.
    delete_progress: Mapped[str | None] = mapped_column(Text, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_recordings_status", "status"),
        # The purge lag (storage/backlog.py): the oldest overdue row of one status.
        Index("ix_recordings_status_retain_until", "status", "retain_until"),
        # The purge's unfinished deletions, in id order (storage/retention.py).
        Index("ix_recordings_status_id", "status", "id"),
    )


class CopyStatus(StrEnum):
    """One copy of one recording on one backend.

    pending -> verified, or dead after too many failed attempts (``storage retry`` puts it
    back to pending); deleting -> deleted when the recording is purged or erased.
    """

    PENDING = "pending"
    VERIFIED = "verified"
    DEAD = "dead"
    DELETING = "deleting"
    DELETED = "deleted"


class RecordingCopy(Base):
    """Where a recording is kept, and the proof that the copy there is intact."""

    __tablename__ = "recording_copies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    backend: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=CopyStatus.PENDING.value)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Of the bytes on the backend (the ciphertext when encrypted).
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    sidecar_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set when the facts in the sidecar changed (a new retention class): the sweeper
    # rewrites the sidecar on the backend, and clears it only if nothing changed since.
    sidecar_stale_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("recording_id", "backend", name="uq_recording_copies_recording_backend"),
        Index("ix_recording_copies_status", "status"),
    )


class DataKey(Base):
    """A recording's own AES-256 key, wrapped by a master key; destroyed on deletion.

    Destroying it makes every copy unreadable, including copies we could not reach
    (an old backup of the customer's FTP server).
    """

    __tablename__ = "data_keys"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), primary_key=True)
    master_key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Tombstone(Base):
    """What was deleted, where, when and why: so access requests are answered truthfully."""

    __tablename__ = "tombstones"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(String(36), index=True)
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(String(32))
    retention_class: Mapped[str] = mapped_column(String(64))
    retain_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # retention, manual, erasure, withdrawal, ...
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # JSON list of {"backend", "key", "deleted_at"}, plus the spool/cache and the data key.
    deleted_where: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit trail.

    ``hash`` covers every other field and the previous entry's hash, so changing,
    removing or reordering an entry breaks the chain at that entry
    (``storage.audit_trail``). ``seq`` is the chain head's next number, taken under the
    head row's lock (:class:`AuditHead`), so two writers (the service and a CLI) can
    never fork the chain.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    # What it was done to: "recording:ID", "call:ID", "route:DID", "dsar:ID", "subject:KEY"
    target: Mapped[str] = mapped_column(String(200), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    # JSON object of further facts; never a phone number in the clear.
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The one row naming the audit chain's last entry (``seq`` 0 and 64 zeros: empty).

    Every append updates it first, in the appending transaction: that takes SQLite's write
    lock and a row lock on PostgreSQL, so appenders queue and each links to the entry
    the one before it wrote. ``audit verify`` also checks the chain ends where the head
    says, which is how removing the newest entries is caught.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
