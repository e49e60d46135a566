"""Share links: making, listing and revoking them, and opening one without an account.

A link is ``{base_url}/s/{token}``, the token 256 random bits; only its sha256 is kept
(``share_models.ShareLink``) and the token is never written to the audit trail or a log
(the access log shows ``/s/…``). Who may share: ``recordings.share`` for the recording's
call (a supervisor's own extensions, a dpo any); an admin or auditor never. A supervisor
lists and revokes the links they made; a dpo every link.

Opening: an unknown token is 404; a revoked, expired or used-up link 410. Every open of a
known link is audited as ``share.opened`` (the entry's time, the client's IP, page or
media, the range), refused ones with outcome ``refused``.

One-time links mean one playback session. The first page open marks the link used and
hands that browser a playback cookie (an HMAC of the link id and that moment, HttpOnly,
scoped to the link's path); for :data:`ONE_TIME_WINDOW` from then, media requests
carrying that cookie are served (the ``<audio>`` element's ranges and seeks), nothing
else: a second page open, or the media URL from another browser, is 410. So the link
plays once in the browser that opened it, and a forwarded copy is worthless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.call_record import CallNotFound, actor_of, recording_call
from pbx_bridge.web.permissions import RECORDINGS_SHARE, SHARES_READ, SHARES_REVOKE
from pbx_bridge.web.share_models import ShareLink
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import WebState
from storage.audit_trail import record_event
from storage.models import utcnow

MAX_SHARE_DAYS = 30
MAX_NOTE = 500
ONE_TIME_WINDOW = timedelta(hours=2)
# An ended link stays listed (state expired, revoked, used) this long, then is deleted.
KEEP_ENDED = timedelta(days=MAX_SHARE_DAYS)
TOKEN_BYTES = 32
CREATED, REVOKED, OPENED = "share.created", "share.revoked", "share.opened"


class ShareNotFound(LookupError):
    """No share link with that id or token."""


class ShareGone(Exception):
    """The link was revoked, has expired, or a one-time link was used: 410."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkState(StrEnum):
    LIVE = "live"
    REVOKED = "revoked"
    EXPIRED = "expired"
    USED = "used"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def state_of(link: ShareLink, now: datetime) -> LinkState:
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if now >= link.expires_at:
        return LinkState.EXPIRED
    if link.one_time and link.used_at is not None:
        return LinkState.USED
    return LinkState.LIVE


def playback_key(secret_key: bytes, link: ShareLink) -> str:
    """The one-time link's playback cookie: bound to the link and its first open."""
    assert link.used_at is not None
    mac = hmac.new(secret_key, b"share-playback\0", hashlib.sha256)
    mac.update(f"{link.id}\0{link.used_at.isoformat()}".encode())
    return mac.hexdigest()


@dataclass(frozen=True)
class NewShare:
    link: ShareLink
    token: str

    def url(self, base_url: str) -> str:
        return f"{base_url}/s/{self.token}"


def check_days(days: int | None, default: int) -> int:
    if days is None:
        return default
    if not 1 <= days <= MAX_SHARE_DAYS:
        raise ValueError(f"expires_days must be 1 to {MAX_SHARE_DAYS}, got {days}")
    return days


async def create_share(
    state: WebState, principal: Principal, recording_id: str, *,
    days: int | None = None, one_time: bool = False, note: str | None = None,
) -> NewShare:
    """``CallNotFound``, ``Forbidden`` or ``ValueError`` (days, note) before anything is
    stored; the link and its ``share.created`` entry commit together."""
    lifetime = check_days(days, state.settings.share_days)
    if note is not None and len(note) > MAX_NOTE:
        raise ValueError(f"note must be at most {MAX_NOTE} characters")
    await recording_call(state, principal, recording_id, RECORDINGS_SHARE)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    link = ShareLink(
        token_hash=token_hash(token), recording_id=recording_id,
        created_by=actor_of(principal), owner=principal.name, created_at=now,
        expires_at=now + timedelta(days=lifetime), one_time=one_time,
        note=(note or None),
    )
    async with state.sessions() as session:
        session.add(link)
        await session.flush()
        await record_event(
            session, actor=actor_of(principal), action=CREATED,
            target=f"recording:{recording_id}",
            details={"share_id": link.id, "expires_at": link.expires_at.isoformat(),
                     "one_time": one_time},
        )
        await session.commit()
    return NewShare(link, token)


async def _reach(state: WebState, principal: Principal, action: str) -> bool:
    """Whether the principal's grant reaches every link (dpo) or only their own."""
    grant = await state.accounts.allowed(principal, action)
    if not grant.allowed:
        raise Forbidden
    return grant.extensions is None


async def list_shares(state: WebState, principal: Principal) -> list[ShareLink]:
    every = await _reach(state, principal, SHARES_READ)
    query = select(ShareLink).order_by(ShareLink.created_at.desc())
    if not every:
        query = query.where(ShareLink.owner == principal.name)
    async with state.sessions() as session:
        return list((await session.scalars(query)).all())


async def revoke_share(state: WebState, principal: Principal, share_id: str) -> ShareLink:
    """Revoking twice is harmless (the first time stays on the link and in the trail)."""
    every = await _reach(state, principal, SHARES_REVOKE)
    async with state.sessions() as session:
        link = await session.get(ShareLink, share_id)
        if link is None:
            raise ShareNotFound(share_id)
        if not every and link.owner != principal.name:
            raise Forbidden
        if link.revoked_at is None:
            link.revoked_at = utcnow()
            link.revoked_by = actor_of(principal)
            await record_event(
                session, actor=actor_of(principal), action=REVOKED,
                target=f"recording:{link.recording_id}", details={"share_id": link.id},
            )
            await session.commit()
        return link


async def audit_open(
    state: WebState, link: ShareLink, ip: str | None, outcome: str, **details: object
) -> None:
    async with state.sessions() as session:
        await record_event(
            session, actor=f"share:{link.id}", action=OPENED,
            target=f"recording:{link.recording_id}", outcome=outcome,
            details={"share_id": link.id, "ip": ip, **details},
        )
        await session.commit()


async def _by_token(session: AsyncSession, token: str) -> ShareLink:
    link = await session.scalar(
        select(ShareLink).where(ShareLink.token_hash == token_hash(token))
    )
    if link is None:
        raise ShareNotFound("unknown share link")
    return link


async def open_page(state: WebState, token: str, ip: str | None) -> ShareLink:
    """The link behind a page open: marks a one-time link used (its playback starts)."""
    now = utcnow()
    async with state.sessions() as session:
        link = await _by_token(session, token)
        found = state_of(link, now)
        if found is LinkState.LIVE and link.one_time:
            link.used_at = now
            await session.commit()
    if found is not LinkState.LIVE:
        await audit_open(state, link, ip, "refused", via="page", reason=str(found))
        raise ShareGone(str(found))
    await audit_open(state, link, ip, "ok", via="page")
    return link


async def media_link(
    state: WebState, token: str, playback_cookie: str | None, ip: str | None
) -> ShareLink:
    """The link behind a media request, if it may still play (see the module's doc)."""
    now = utcnow()
    async with state.sessions() as session:
        link = await _by_token(session, token)
    found = state_of(link, now)
    if link.one_time and found is LinkState.USED:
        assert link.used_at is not None
        in_window = now < link.used_at + ONE_TIME_WINDOW
        cookie_ok = playback_cookie is not None and hmac.compare_digest(
            playback_cookie, playback_key(state.secret_key, link)
        )
        found = LinkState.LIVE if in_window and cookie_ok else LinkState.USED
    elif link.one_time and found is LinkState.LIVE:
        found = LinkState.USED  # media before any page open: not this link's session
    if found is not LinkState.LIVE:
        await audit_open(state, link, ip, "refused", via="media", reason=str(found))
        raise ShareGone(str(found))
    return link


async def delete_ended_links(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None
) -> int:
    """Delete the links that ended (expired, revoked, or a one-time link whose playback
    window closed) more than :data:`KEEP_ENDED` ago; how many. Nothing can open them any
    more; their making, opens and revoking stay in the audit trail (``share_id``)."""
    cutoff = (now or utcnow()) - KEEP_ENDED
    async with sessions() as session:
        result = await session.execute(
            delete(ShareLink).where(
                or_(
                    ShareLink.expires_at <= cutoff,
                    ShareLink.revoked_at <= cutoff,
                    and_(ShareLink.one_time.is_(True),
                         ShareLink.used_at <= cutoff - ONE_TIME_WINDOW),
                )
            )
        )
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["CallNotFound", "ShareGone", "ShareNotFound", "create_share", "list_shares"]
