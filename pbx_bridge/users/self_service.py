"""What a signed-in user may change about themselves ("My account" in the console): the
UI language, their own password, their own TOTP second factor, and their own sessions.

Each is keyed by the user's id from their live session, never by a name from a form, so
one user can change no one else. Every change is an audit entry with the user as actor
(never a password, hash or secret).

- A new password needs the current one (a session left open on a shared PC must not be
  enough to take the account over), follows the CLI's policy (``check_policy``) and hash
  (argon2id, in a thread), and ends the user's *other* sessions: whoever else was signed
  in with the old password is out.
- A new TOTP secret takes effect only once a code from it is confirmed: until then it
  lives sealed (AES-GCM, bound to the user's id, ``TotpSealer``) in the enrolment form,
  not in the database, so a half-done enrolment never locks anyone out and needs no
  column. The confirming code's step is stored as the last used, so it cannot sign in
  again (a replay).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import AuthSettings, Language
from pbx_bridge.users import totp
from pbx_bridge.users.models import User, WebSession
from pbx_bridge.users.passwords import check_policy, hash_password, verify_password
from pbx_bridge.users.web_sessions import digest
from pbx_bridge.web.accounts import AccountChangeRefused, LiveSession, TotpEnrolment
from storage.audit_trail import record_event
from storage.models import utcnow

# Why a change is refused: AccountChangeRefused's reason, the console's message key.
WRONG_PASSWORD = "wrong-password"
WRONG_CODE = "wrong-code"
ENROLMENT_UNREADABLE = "enrolment-unreadable"
NO_SUCH_USER = "no-such-user"


async def _user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None or user.disabled:
        raise AccountChangeRefused(NO_SUCH_USER, "this account no longer exists or is disabled")
    return user


async def set_language(
    sessions: async_sessionmaker[AsyncSession], user_id: str, language: Language | None
) -> None:
    """The user's UI language (None: follow the browser); applies from the next page on."""
    async with sessions() as session:
        user = await _user(session, user_id)
        before = user.language
        user.language = None if language is None else language.value
        if before != user.language:
            await record_event(
                session, actor=f"user:{user.name}", action="user.language_changed",
                target=f"user:{user.name}",
                details={"before": before, "after": user.language, "via": "account"},
            )
        await session.commit()


async def _end_others(session: AsyncSession, user_id: str, keep_id: str, now: datetime) -> int:
    result = await session.execute(
        update(WebSession)
        .where(
            WebSession.user_id == user_id,
            WebSession.revoked_at.is_(None),
            WebSession.id_hash != digest(keep_id),
        )
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def change_password(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    session_id: str,
    current: str,
    new: str,
    *,
    auth: AuthSettings,
) -> int:
    """The user's new password; how many of their other sessions ended. Raises
    ``AccountChangeRefused`` (current password wrong) or ``WeakPassword``."""
    now = utcnow()
    async with sessions() as session:
        user = await _user(session, user_id)
        if not (await verify_password(user.password_hash, current, auth)).ok:
            await record_event(
                session, actor=f"user:{user.name}", action="user.password_change_refused",
                target=f"user:{user.name}", outcome="refused",
                details={"reason": WRONG_PASSWORD}, at=now,
            )
            await session.commit()
            raise AccountChangeRefused(WRONG_PASSWORD, "the current password is not right")
        check_policy(new, user_name=user.name, min_length=auth.min_password_length)
        user.password_hash = await hash_password(new, auth)
        ended = await _end_others(session, user.id, session_id, now)
        await record_event(
            session, actor=f"user:{user.name}", action="user.password_changed",
            target=f"user:{user.name}", details={"sessions_ended": ended, "via": "account"},
            at=now,
        )
        await session.commit()
    return ended


async def start_totp(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    *,
    sealer: totp.TotpSealer,
    issuer: str,
) -> TotpEnrolment:
    """A fresh secret for the enrolment form; nothing is stored yet."""
    async with sessions() as session:
        user = await _user(session, user_id)
    secret = totp.new_secret()
    return TotpEnrolment(
        uri=totp.provisioning_uri(secret, user.name, issuer),
        secret=secret,
        sealed=sealer.seal(secret, user.id),
    )


def reopen_totp(
    user_id: str, user_name: str, sealed: str, *, sealer: totp.TotpSealer, issuer: str
) -> TotpEnrolment:
    """The enrolment form's secret again (to show it once more after a wrong code)."""
    try:
        secret = sealer.open(sealed, user_id)
    except totp.TotpSecretUnreadable as exc:
        raise AccountChangeRefused(ENROLMENT_UNREADABLE, "this enrolment form is not yours "
                                 "or was altered: start again") from exc
    return TotpEnrolment(totp.provisioning_uri(secret, user_name, issuer), secret, sealed)


async def confirm_totp(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    sealed: str,
    code: str,
    *,
    sealer: totp.TotpSealer,
) -> bool:
    """Store the pending secret once ``code`` matches it; whether one was replaced.
    Raises ``AccountChangeRefused`` (wrong code, or a form sealed for someone else)."""
    try:
        secret = sealer.open(sealed, user_id)
    except totp.TotpSecretUnreadable as exc:
        raise AccountChangeRefused(ENROLMENT_UNREADABLE, "this enrolment form is not yours "
                                 "or was altered: start again") from exc
    step = totp.matching_step(secret, code)
    if step is None:
        raise AccountChangeRefused(WRONG_CODE, "the code does not match the new secret")
    async with sessions() as session:
        user = await _user(session, user_id)
        replaced = user.totp_secret is not None
        user.totp_secret = sealer.seal(secret, user.id)
        user.totp_last_step = step  # this code cannot sign in again
        await record_event(
            session, actor=f"user:{user.name}", action="user.totp_enrolled",
            target=f"user:{user.name}", details={"replaced": replaced, "via": "account"},
        )
        await session.commit()
    return replaced


async def live_sessions(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    session_id: str,
    *,
    auth: AuthSettings,
) -> list[LiveSession]:
    """The user's sessions that still work (not ended, not expired, not idle too long),
    the newest first."""
    now = utcnow()
    idle = timedelta(minutes=auth.session_idle_minutes)
    current = digest(session_id)
    async with sessions() as session:
        rows = (
            await session.scalars(
                select(WebSession)
                .where(
                    WebSession.user_id == user_id,
                    WebSession.revoked_at.is_(None),
                    WebSession.expires_at > now,
                    WebSession.last_seen_at > now - idle,
                )
                .order_by(WebSession.last_seen_at.desc())
            )
        ).all()
    return [
        LiveSession(
            current=row.id_hash == current, created_at=row.created_at,
            last_seen_at=row.last_seen_at, expires_at=row.expires_at, ip=row.ip,
            user_agent=row.user_agent,
        )
        for row in rows
    ]


async def end_other_sessions(
    sessions: async_sessionmaker[AsyncSession], user_id: str, session_id: str
) -> int:
    """Sign out everywhere else; how many sessions ended (audited even when none)."""
    now = utcnow()
    async with sessions() as session:
        user = await _user(session, user_id)
        ended = await _end_others(session, user.id, session_id, now)
        await record_event(
            session, actor=f"user:{user.name}", action="auth.other_sessions_ended",
            target=f"user:{user.name}", details={"sessions_ended": ended}, at=now,
        )
        await session.commit()
    return ended
