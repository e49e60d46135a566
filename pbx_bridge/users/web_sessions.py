"""Console sessions, kept on the server: the cookie holds a random id, the database its
sha256, the user, and when it was last used.

Session fixation cannot happen: an id is only ever made here, after a sign-in
(:func:`open_web_session` takes a :class:`SignedIn`, not an id), so an id an attacker
planted before the sign-in never names a session; the console's pre-sign-in id, if it
has one, is passed as ``replacing`` and ends. Signing out, disabling the user or
resetting their password ends sessions at once, because every request asks here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import AuthSettings
from pbx_bridge.users.accounts import principal_of, with_user
from pbx_bridge.users.models import WebSession
from pbx_bridge.users.permissions import Principal
from pbx_bridge.users.sign_in import SignedIn
from storage.audit_trail import record_event
from storage.database import outside_transaction
from storage.models import utcnow

# last_seen_at is written at most this often per session (not on every page).
TOUCH_EVERY = timedelta(seconds=60)
_USER_AGENT_MAX = 256


@dataclass(frozen=True)
class OpenedSession:
    id: str  # the cookie's value; never stored
    expires_at: datetime  # the latest it can last (idle time ends it sooner)


def digest(session_id: str) -> str:
    """What the table keeps of a session id (its sha256, hex)."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


async def open_web_session(
    sessions: async_sessionmaker[AsyncSession],
    signed_in: SignedIn,
    *,
    auth: AuthSettings,
    ip: str | None,
    user_agent: str | None,
    replacing: str | None = None,
    now: datetime | None = None,
) -> OpenedSession:
    now = now or utcnow()
    session_id = secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=auth.session_max_hours)
    async with sessions() as session:
        # The user's sessions that can no longer be used go as a new one comes, so the
        # table holds about one row per device per user, never the whole history (the
        # sign-ins themselves are in the audit trail).
        await session.execute(
            delete(WebSession).where(
                WebSession.user_id == signed_in.principal.user_id, WebSession.expires_at <= now
            )
        )
        if replacing:
            await session.execute(
                update(WebSession)
                .where(WebSession.id_hash == digest(replacing), WebSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        session.add(
            WebSession(
                id_hash=digest(session_id),
                user_id=signed_in.principal.user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                ip=ip[:64] if ip else None,
                user_agent=user_agent[:_USER_AGENT_MAX] if user_agent else None,
            )
        )
        await session.commit()
    return OpenedSession(session_id, expires_at)


async def session_principal(
    sessions: async_sessionmaker[AsyncSession],
    session_id: str | None,
    *,
    auth: AuthSettings,
    now: datetime | None = None,
) -> Principal | None:
    """The signed-in user behind a cookie, or None (unknown, ended, expired, idle too long,
    user disabled): the console then shows the sign-in page."""
    if not session_id:
        return None
    now = now or utcnow()
    async with sessions() as session:
        # Every page asks: the lookup and the occasional touch need no transaction.
        await outside_transaction(session)
        found = await with_user(session, WebSession, WebSession.id_hash == digest(session_id))
        if found is None:
            return None
        row, user = found
        idle_until = row.last_seen_at + timedelta(minutes=auth.session_idle_minutes)
        if row.revoked_at is not None or now >= row.expires_at or now >= idle_until:
            return None
        if user.disabled:
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            await session.execute(
                update(WebSession)
                .where(WebSession.id_hash == row.id_hash)
                .values(last_seen_at=now)
            )
            await session.commit()
        return principal_of(user, session_id=session_id)


async def end_web_session(
    sessions: async_sessionmaker[AsyncSession],
    session_id: str | None,
    *,
    now: datetime | None = None,
) -> bool:
    """Sign out: the session ends (audited as ``auth.signed_out``); False if none was live."""
    if not session_id:
        return False
    now = now or utcnow()
    async with sessions() as session:
        found = await with_user(
            session,
            WebSession,
            WebSession.id_hash == digest(session_id),
            WebSession.revoked_at.is_(None),
        )
        if found is None:
            return False
        row, user = found
        row.revoked_at = now
        await record_event(
            session,
            actor=f"user:{user.name}",
            action="auth.signed_out",
            target=f"user:{user.name}",
            at=now,
        )
        await session.commit()
    return True


async def delete_ended_sessions(
    sessions: async_sessionmaker[AsyncSession],
    *,
    auth: AuthSettings,
    now: datetime | None = None,
) -> int:
    """Delete every session no cookie can use any more (signed out or ended by a password
    change, past its absolute end, or idle too long); how many. The sign-ins and
    sign-outs themselves are in the audit trail; the table keeps only live sessions."""
    now = now or utcnow()
    idle_before = now - timedelta(minutes=auth.session_idle_minutes)
    async with sessions() as session:
        result = await session.execute(
            delete(WebSession).where(
                or_(
                    WebSession.revoked_at.is_not(None),
                    WebSession.expires_at <= now,
                    WebSession.last_seen_at <= idle_before,
                )
            )
        )
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
