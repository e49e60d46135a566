"""API tokens: a user's bearer secret for scripts, narrowed to some of their role's actions.

The bearer is ``pbxb_<token id>.<secret>``: the id finds the row, and only the sha256 of
the 256-bit secret is stored, so a copy of the database lets nobody in. The secret is
shown once, when the token is made. A token stops working when revoked, when it expires,
and while its user is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.history import iso
from pbx_bridge.config import Role
from pbx_bridge.users.accounts import UserError, get_user, principal_of, with_user
from pbx_bridge.users.models import ApiToken, User
from pbx_bridge.users.permissions import Principal, check_scopes
from storage.audit_trail import record_event
from storage.database import outside_transaction
from storage.models import new_id, utcnow

PREFIX = "pbxb_"
# last_used_at is written at most this often per token: a busy script must not turn
# every API request into a database write.
LAST_USED_EVERY = timedelta(seconds=60)


class UnknownToken(UserError):
    pass


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"

    def to_json(self, now: datetime) -> dict[str, object]:
        return {
            "id": self.id,
            "user": self.user,
            "scopes": list(self.scopes),
            "state": self.state(now),
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(token: ApiToken, user_name: str) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        user=user_name,
        scopes=tuple(sorted(token.scopes.split())),
        created_by=token.created_by,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


async def create_token(
    session: AsyncSession,
    *,
    user_name: str,
    scopes: Sequence[str],
    days: int,
    actor: str,
    now: datetime | None = None,
) -> tuple[TokenInfo, str]:
    """A new token and its bearer string (shown once). Raises UserError / InvalidScope."""
    if not 1 <= days <= 3650:
        raise UserError(f"--expires-days must be 1 to 3650, not {days}")
    user = await get_user(session, user_name)
    if user.disabled:
        raise UserError(f"user {user.name!r} is disabled: enable them before making a token")
    wanted = [s for scope in scopes for s in scope.replace(",", " ").split()]
    granted = check_scopes(Role(user.role), wanted)
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    token = ApiToken(
        id=new_id(),
        user_id=user.id,
        secret_hash=_digest(secret),
        scopes=" ".join(sorted(granted)),
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(token)
    await session.flush()
    await record_event(
        session,
        actor=actor,
        action="token.created",
        target=f"token:{token.id}",
        details={
            "user": user.name,
            "scopes": sorted(granted),
            "expires_at": token.expires_at,
        },
    )
    return _info(token, user.name), f"{PREFIX}{token.id}.{secret}"


async def list_tokens(session: AsyncSession) -> list[TokenInfo]:
    rows = await session.execute(
        select(ApiToken, User.name)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.created_at, ApiToken.id)
    )
    return [_info(token, name) for token, name in rows.all()]


async def revoke_token(session: AsyncSession, token_id: str, *, actor: str) -> TokenInfo:
    found = await with_user(session, ApiToken, ApiToken.id == token_id.strip())
    if found is None:
        raise UnknownToken(f"no token {token_id!r} (see `pbx-bridge tokens list`)")
    token, user_name = found[0], found[1].name
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await record_event(
            session,
            actor=actor,
            action="token.revoked",
            target=f"token:{token.id}",
            details={"user": user_name},
        )
    return _info(token, user_name)


def _parse(bearer: str) -> tuple[str, str] | None:
    if not bearer.startswith(PREFIX):
        return None
    token_id, dot, secret = bearer[len(PREFIX):].partition(".")
    if not dot or not secret or len(token_id) != 36:
        return None
    return token_id, secret


async def token_principal(
    sessions: async_sessionmaker[AsyncSession],
    bearer: str,
    *,
    now: datetime | None = None,
) -> Principal | None:
    """Who a bearer token speaks for, or None (unknown, wrong secret, revoked, expired,
    user disabled): the API answers all of those alike, 401."""
    parsed = _parse(bearer.strip())
    if parsed is None:
        return None
    token_id, secret = parsed
    now = now or utcnow()
    async with sessions() as session:
        # Every API request asks: the lookup and the occasional touch need no transaction.
        await outside_transaction(session)
        found = await with_user(session, ApiToken, ApiToken.id == token_id)
        if found is None:
            return None
        token, user = found
        if not hmac.compare_digest(token.secret_hash, _digest(secret)):
            return None
        if token.revoked_at is not None or token.expires_at <= now or user.disabled:
            return None
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
            await session.execute(
                update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
            )
            await session.commit()
        return principal_of(user, scopes=frozenset(token.scopes.split()), token_id=token.id)
