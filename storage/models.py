"""Recording metadata: the rows that prove what was kept, where, and until when.

The declarative ``Base`` lives here, in the lower layer, so the storage pipeline can ship
on its own; the call models of the upper layer build on the same ``Base`` and one
Alembic history covers both.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, Float, Index, MetaData, String, Text
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

    recording -> finished -> spooled -> stored, or failed (Asterisk reported a failure,
    or the file vanished before we fetched it). A restart resumes any row that is not
    yet ``stored`` or ``failed``.
    """

    RECORDING = "recording"
    FINISHED = "finished"
    SPOOLED = "spooled"
    STORED = "stored"
    FAILED = "failed"


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
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    spool_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_recordings_status", "status"),)
