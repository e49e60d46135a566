"""Signing in: name, password and, where required, a TOTP code, under lockout rules.

Order matters. An address over its failure limit is refused before anything is looked
up; an unknown name costs as long as a wrong password (the timing tells no names); a
locked account is refused before its password is checked, so guessing goes nowhere while
it is locked. ``[auth] max_failures`` wrong passwords or codes in a row lock the account
for ``lockout_minutes``. A right password with the code still missing is no failure (the
console asks for the code next), and neither is a disabled account.

Every outcome is an audit entry, committed even though the sign-in fails
(``auth.signed_in``, ``auth.sign_in_failed`` with the reason, ``auth.locked``,
``auth.address_throttled``), with the client address; never the password or the code,
and never a name that is not a user's (it may be a password typed in the wrong field).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import AuthSettings, PrivacySettings, Role
from pbx_bridge.users import totp
from pbx_bridge.users.accounts import UserError, normalise_name, principal_of
from pbx_bridge.users.models import User
from pbx_bridge.users.passwords import spend_like_a_verify, verify_password
from pbx_bridge.users.permissions import Principal
from pbx_bridge.users.throttle import IpThrottle
from storage.audit_trail import record_event
from storage.models import utcnow


class Refusal(StrEnum):
    """Why a sign-in failed; the values are the console's message keys
    (pbx_bridge/web/accounts.py)."""

    INVALID = "wrong-credentials"  # unknown name or wrong password: the same answer
    LOCKED = "locked-out"
    DISABLED = "disabled"
    TOTP_REQUIRED = "second-factor-needed"  # password right, code still to give
    TOTP_INVALID = "wrong-second-factor"
    TOTP_REPLAYED = "second-factor-replayed"
    TOTP_NOT_ENROLLED = "second-factor-not-set-up"
    THROTTLED = "throttled"


_MESSAGES = {
    Refusal.INVALID: "wrong user name or password",
    Refusal.LOCKED: "too many failed sign-ins: account locked, try again later",
    Refusal.DISABLED: "this account is disabled",
    Refusal.TOTP_REQUIRED: "enter the code from your authenticator app",
    Refusal.TOTP_INVALID: "wrong or expired authenticator code",
    Refusal.TOTP_REPLAYED: "this authenticator code was used already: wait for the next one",
    Refusal.TOTP_NOT_ENROLLED: (
        "a second factor is required but none is set up: ask an admin to run "
        "`pbx-bridge users totp NAME`"
    ),
    Refusal.THROTTLED: "too many failed sign-ins from this address: try again later",
}
# Failures that count toward the account's lockout.
_COUNTED = frozenset({Refusal.INVALID, Refusal.TOTP_INVALID, Refusal.TOTP_REPLAYED})


class SignInRefused(Exception):
    """Why a sign-in failed. ``message`` is safe to show the person signing in."""

    def __init__(self, reason: Refusal, locked_until: datetime | None = None) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason = reason
        self.message = _MESSAGES[reason]
        self.locked_until = locked_until


@dataclass(frozen=True)
class SignedIn:
    """Proof of a successful sign-in: only this opens a console session."""

    principal: Principal
    at: datetime


@dataclass
class AuthContext:
    """What sign-in needs besides the database; one per process (the throttle's memory)."""

    auth: AuthSettings
    sealer: totp.TotpSealer
    throttle: IpThrottle

    @classmethod
    async def from_settings(cls, auth: AuthSettings, privacy: PrivacySettings) -> AuthContext:
        return cls(
            auth=auth,
            sealer=await totp.TotpSealer.from_settings(privacy),
            throttle=IpThrottle(auth.ip_max_failures, timedelta(minutes=auth.ip_window_minutes)),
        )


def totp_needed(user: User, auth: AuthSettings) -> bool:
    return (
        user.totp_secret is not None
        or user.totp_required
        or Role(user.role) in auth.totp_required_roles
    )


async def _find(session: AsyncSession, name: str) -> User | None:
    try:
        cleaned = normalise_name(name)
    except UserError:
        return None
    return await session.scalar(select(User).where(User.name == cleaned))


async def _count_failure(
    session: AsyncSession, user: User, auth: AuthSettings, now: datetime
) -> datetime | None:
    """One more failure in a row (atomically); the lock's end if this one locks."""
    failures = (
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_attempts=User.failed_attempts + 1)
            .returning(User.failed_attempts)
        )
    ).scalar_one()
    if failures < auth.max_failures:
        return None
    until = now + timedelta(minutes=auth.lockout_minutes)
    await session.execute(
        update(User).where(User.id == user.id).values(failed_attempts=0, locked_until=until)
    )
    return until


async def _accept_step(session: AsyncSession, user: User, step: int) -> bool:
    """Compare-and-set the last accepted step: two sign-ins racing with one code, one wins."""
    result = await session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return bool(getattr(result, "rowcount", 0))


async def _check(
    session: AsyncSession,
    user: User,
    password: str,
    totp_code: str | None,
    context: AuthContext,
    now: datetime,
) -> Refusal | None:
    auth = context.auth
    verified = await verify_password(user.password_hash, password, auth)
    if not verified.ok:
        return Refusal.INVALID
    if user.disabled:
        return Refusal.DISABLED
    if totp_needed(user, auth):
        if user.totp_secret is None:
            return Refusal.TOTP_NOT_ENROLLED
        if not totp_code:
            return Refusal.TOTP_REQUIRED
        secret = context.sealer.open(user.totp_secret, user.id)
        step = totp.matching_step(secret, totp_code, now=now.timestamp())
        if step is None:
            return Refusal.TOTP_INVALID
        if not await _accept_step(session, user, step):
            return Refusal.TOTP_REPLAYED
    if verified.new_hash is not None:
        user.password_hash = verified.new_hash
    return None


async def authenticate(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    password: str,
    totp_code: str | None,
    ip: str | None,
    *,
    context: AuthContext,
    now: datetime | None = None,
) -> SignedIn:
    """Sign a user in, or raise :class:`SignInRefused` with the reason."""
    now = now or utcnow()
    ip = ip.strip()[:64] or None if ip else None  # a forwarded header is the client's text
    details: dict[str, object] = {"ip": ip}
    if context.throttle.blocked(ip, now):
        raise SignInRefused(Refusal.THROTTLED)
    refusal: Refusal | None
    locked_until: datetime | None = None
    async with sessions() as session:
        user = await _find(session, name)
        if user is None:
            await spend_like_a_verify(password, context.auth)
            refusal, target = Refusal.INVALID, "user:unknown"
        else:
            target = f"user:{user.name}"
            if user.locked_until is not None and user.locked_until > now:
                refusal, locked_until = Refusal.LOCKED, user.locked_until
            else:
                refusal = await _check(session, user, password, totp_code, context, now)
            if refusal in _COUNTED:
                locked_until = await _count_failure(session, user, context.auth, now)
        if refusal is None and user is not None:
            user.failed_attempts = 0
            user.locked_until = None
            user.last_sign_in_at = now
            await record_event(
                session,
                actor=f"user:{user.name}",
                action="auth.signed_in",
                target=target,
                details={**details, "second_factor": totp_needed(user, context.auth)},
                at=now,
            )
            await session.commit()
            return SignedIn(principal_of(user), now)
        assert refusal is not None
        actor = f"user:{user.name}" if user is not None else f"ip:{ip or 'unknown'}"
        events: list[tuple[str, dict[str, object]]] = [
            ("auth.sign_in_failed", {**details, "reason": refusal.value})
        ]
        if refusal in _COUNTED and locked_until is not None:
            events.append(("auth.locked", {**details, "until": locked_until}))
        if refusal is not Refusal.TOTP_REQUIRED and context.throttle.failed(ip, now):
            events.append(("auth.address_throttled", dict(details)))
        for action, entry in events:
            await record_event(
                session, actor=actor, action=action, target=target, details=entry, at=now
            )
        await session.commit()
    if refusal in _COUNTED and locked_until is not None:
        raise SignInRefused(Refusal.LOCKED, locked_until)
    raise SignInRefused(refusal, locked_until)
