"""Share links: a recording sent as a link, not a file (issue 10, as Headshed Cube does).

The link carries a random 256-bit secret; only its sha256 is stored, so a database
reader cannot open a shared recording. ``owner`` is the user who made it (a supervisor
lists and revokes only their own); ``created_by`` the audit actor (user or token).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, UTCDateTime, new_id, utcnow


class ShareLink(Base):
    __tablename__ = "share_links"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    one_time: Mapped[bool] = mapped_column(Boolean, default=False)
    # A one-time link's first open: its playback window starts here.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
