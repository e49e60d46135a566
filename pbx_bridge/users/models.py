"""People who sign in to the console and the API, their API tokens and console sessions.

Only what proves a secret is stored, never the secret: an argon2id hash of the password,
a sha256 of each token's and session's random secret (they carry 256 bits, so a fast hash
is enough), and the TOTP secret sealed (pbx_bridge/users/totp.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, UTCDateTime, new_id, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # config.Role
    password_hash: Mapped[str] = mapped_column(Text)
    # AES-GCM sealed, base64; NULL until `users totp NAME` enrols the user.
    totp_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The last TOTP time step accepted: a code of that step or earlier is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    totp_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Comma-separated extension numbers a supervisor sees; empty for other roles.
    extensions: Mapped[str] = mapped_column(Text, default="")
    # A supervisor granted to see numbers in the clear (dpo always does; others never).
    unmask: Mapped[bool] = mapped_column(Boolean, default=False)
    # tr or en; NULL: the console follows the browser (Accept-Language).
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    # sha256 (hex) of the secret part of the bearer token.
    secret_hash: Mapped[str] = mapped_column(String(64))
    # Space-separated scopes (actions or "group.*"); they narrow the user's role.
    scopes: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebSession(Base):
    """A signed-in console session, server-side: sign-out and disabling a user end it."""

    __tablename__ = "web_sessions"

    # sha256 (hex) of the cookie's random id: a database reader cannot take over a session.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
