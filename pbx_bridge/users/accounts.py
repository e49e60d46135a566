"""Managing users: add, list, disable, enable, reset a password, enrol TOTP.

Every change is an audit entry in the same transaction (``user.created``,
``user.disabled``, ...), naming who did it and what changed, never a password, hash or
secret. Disabling a user or resetting their password ends their console sessions at once;
their API tokens stop working while they are disabled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.changes import record_change
from pbx_bridge.calls.history import iso
from pbx_bridge.calls.models import Extension, RingGroup, Route
from pbx_bridge.config import AuthSettings, Language, Role
from pbx_bridge.users import totp
from pbx_bridge.users.models import ApiToken, User, WebSession
from pbx_bridge.users.passwords import check_policy, hash_password
from pbx_bridge.users.permissions import Principal
from storage.audit_trail import record_event
from storage.models import utcnow

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class UserError(ValueError):
    """A user command that cannot be carried out as given; the message says why, and
    ``field`` which input of a form it is about (None: the whole request)."""

    field: str | None = None


class InvalidUserName(UserError):
    field = "name"


class DuplicateUser(UserError):
    field = "name"


class UnknownUser(UserError):
    pass


class InvalidExtensions(UserError):
    field = "extensions"


class UnknownExtension(InvalidExtensions):
    pass


class InvalidUnmask(UserError):
    field = "unmask"


@dataclass(frozen=True)
class UserInfo:
    """A user as anyone allowed to manage users may see them: no hash, no secret."""

    id: str
    name: str
    role: Role
    extensions: tuple[str, ...]
    unmask: bool
    language: str | None  # None: the browser's (Accept-Language)
    disabled: bool
    totp_enrolled: bool
    totp_required: bool
    failed_attempts: int
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    created_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "extensions": list(self.extensions),
            "unmask": self.unmask,
            "language": self.language,
            "disabled": self.disabled,
            "totp_enrolled": self.totp_enrolled,
            "totp_required": self.totp_required,
            "failed_attempts": self.failed_attempts,
            "locked_until": iso(self.locked_until),
            "last_sign_in_at": iso(self.last_sign_in_at),
            "created_at": iso(self.created_at),
        }


def split_extensions(stored: str) -> tuple[str, ...]:
    return tuple(e for e in stored.split(",") if e)


def info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        name=user.name,
        role=Role(user.role),
        extensions=split_extensions(user.extensions),
        unmask=user.unmask,
        language=user.language,
        disabled=user.disabled,
        totp_enrolled=user.totp_secret is not None,
        totp_required=user.totp_required,
        failed_attempts=user.failed_attempts,
        locked_until=user.locked_until,
        last_sign_in_at=user.last_sign_in_at,
        created_at=user.created_at,
    )


def normalise_name(name: str) -> str:
    """Names are case-insensitive (``Ayse`` signs in as ``ayse``)."""
    cleaned = name.strip().lower()
    if not NAME_PATTERN.match(cleaned):
        raise InvalidUserName(
            f"invalid user name {name!r}: 1-64 of a-z 0-9 . _ @ -, starting with a letter "
            "or digit"
        )
    return cleaned


R = TypeVar("R", ApiToken, WebSession)


async def with_user(
    session: AsyncSession, model: type[R], *conditions: ColumnElement[bool]
) -> tuple[R, User] | None:
    """A token's or session's row with its user, in one query (every request asks this)."""
    found = (
        await session.execute(
            select(model, User).join(User, User.id == model.user_id).where(*conditions)
        )
    ).first()
    return None if found is None else (found[0], found[1])


async def get_user(session: AsyncSession, name: str) -> User:
    user = await session.scalar(select(User).where(User.name == normalise_name(name)))
    if user is None:
        raise UnknownUser(f"no user {name!r} (see `pbx-bridge users list`)")
    return user


async def _known_extensions(session: AsyncSession, default_target: str) -> set[str]:
    configured = set((await session.scalars(select(Extension.number))).all())
    targets = set((await session.scalars(select(Route.target))).all())
    # A ring group's members take its calls: their supervisors may be given them.
    members = {m for g in (await session.scalars(select(RingGroup.members))).all()
               for m in (part.partition(":")[0] for part in g.split(","))}
    return configured | targets | members | {default_target}


async def checked_extensions(
    session: AsyncSession, role: Role, extensions: Iterable[str], default_target: str
) -> list[str]:
    """The extensions a user of ``role`` is given, sorted; UserError naming what is wrong."""
    wanted = sorted({e.strip() for e in extensions if e.strip()})
    if role is not Role.SUPERVISOR:
        if wanted:
            raise InvalidExtensions(
                f"only supervisors have assigned extensions, not role {role.value}")
        return []
    if not wanted:
        raise InvalidExtensions(
            "a supervisor needs --extensions (the extensions whose calls they see)")
    known = await _known_extensions(session, default_target)
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise UnknownExtension(
            f"unknown extension(s) {', '.join(unknown)}: neither set with `pbx-bridge ext set` "
            "nor a route's target"
        )
    return wanted


async def add_user(
    session: AsyncSession,
    *,
    name: str,
    role: Role,
    password: str,
    auth: AuthSettings,
    actor: str,
    default_target: str,
    extensions: Iterable[str] = (),
    unmask: bool = False,
    language: Language | None = None,
    require_totp: bool = False,
) -> UserInfo:
    """A new user; raises :class:`UserError` (or WeakPassword) naming what is wrong."""
    name = normalise_name(name)
    if unmask and role is not Role.SUPERVISOR:
        raise InvalidUnmask(
            f"--unmask is a supervisor's grant: a dpo always sees numbers, role {role.value} never"
        )
    check_policy(password, user_name=name, min_length=auth.min_password_length)
    if await session.scalar(select(User.id).where(User.name == name)) is not None:
        raise DuplicateUser(f"user {name!r} already exists")
    assigned = await checked_extensions(session, role, extensions, default_target)
    user = User(
        name=name,
        role=role.value,
        password_hash=await hash_password(password, auth),
        totp_required=require_totp,
        extensions=",".join(assigned),
        unmask=unmask,
        language=None if language is None else language.value,
        disabled=False,
        failed_attempts=0,
    )
    session.add(user)
    await session.flush()
    await record_event(
        session,
        actor=actor,
        action="user.created",
        target=f"user:{name}",
        details={
            "role": role.value,
            "extensions": assigned,
            "unmask": unmask,
            "language": None if language is None else language.value,
            "totp_required": require_totp,
        },
    )
    return info(user)


def _settings_of(user: User) -> dict[str, object]:
    """What an admin may change and the audit trail records: never a hash or secret."""
    return {
        "role": user.role,
        "extensions": list(split_extensions(user.extensions)),
        "unmask": user.unmask,
        "language": user.language,
        "totp_required": user.totp_required,
    }


async def set_user(
    session: AsyncSession,
    name: str,
    *,
    actor: str,
    default_target: str,
    role: Role | None = None,
    extensions: Iterable[str] | None = None,
    unmask: bool | None = None,
    language: Language | None = None,
    require_totp: bool | None = None,
) -> UserInfo:
    """Change what a user is; ``None`` keeps a field. A user who stops being a supervisor
    loses their extensions and unmask grant; one who becomes one needs extensions.

    A new role ends the user's sessions and revokes their tokens: a token's ``*`` scope
    would otherwise carry over to everything the new role may do, in the hands of
    whoever the old one was given to."""
    user = await get_user(session, name)
    before = _settings_of(user)
    new_role = Role(user.role) if role is None else role
    if extensions is not None:
        wanted: Iterable[str] = extensions
    elif new_role is Role.SUPERVISOR:
        wanted = split_extensions(user.extensions)
    else:
        wanted = ()
    assigned = await checked_extensions(session, new_role, wanted, default_target)
    new_unmask = (user.unmask if unmask is None else unmask) and new_role is Role.SUPERVISOR
    if unmask and new_role is not Role.SUPERVISOR:
        raise InvalidUnmask(
            f"--unmask is a supervisor's grant: a dpo always sees numbers, role "
            f"{new_role.value} never"
        )
    user.role = new_role.value
    user.extensions = ",".join(assigned)
    user.unmask = new_unmask
    if language is not None:
        user.language = language.value
    if require_totp is not None:
        user.totp_required = require_totp
    if before["role"] != user.role:
        await end_access_of(session, user, actor=actor)
    await record_change(
        session, actor=actor, kind="user", key=user.name, before=before,
        after=_settings_of(user),
    )
    return info(user)


async def list_users(session: AsyncSession) -> list[UserInfo]:
    return [info(u) for u in (await session.scalars(select(User).order_by(User.name))).all()]


async def end_sessions_of(session: AsyncSession, user_id: str) -> int:
    """Revoke every live console session of a user; returns how many."""
    result = await session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def end_access_of(session: AsyncSession, user: User, *, actor: str) -> None:
    """End the user's sessions and revoke their live tokens (audited, with how many)."""
    ended = await end_sessions_of(session, user.id)
    revoked = await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    tokens = int(getattr(revoked, "rowcount", 0) or 0)
    if ended or tokens:
        await record_event(
            session, actor=actor, action="user.access_ended", target=f"user:{user.name}",
            details={"sessions_ended": ended, "tokens_revoked": tokens,
                     "why": "role changed"},
        )


async def set_disabled(
    session: AsyncSession, name: str, *, disabled: bool, actor: str
) -> UserInfo:
    user = await get_user(session, name)
    ended = 0
    if user.disabled != disabled:
        user.disabled = disabled
        if disabled:
            ended = await end_sessions_of(session, user.id)
        else:  # a fresh start: an old lock should not greet the re-enabled user
            user.failed_attempts = 0
            user.locked_until = None
        await record_event(
            session,
            actor=actor,
            action="user.disabled" if disabled else "user.enabled",
            target=f"user:{user.name}",
            details={"sessions_ended": ended} if disabled else None,
        )
    return info(user)


async def reset_password(
    session: AsyncSession, name: str, password: str, *, auth: AuthSettings, actor: str
) -> UserInfo:
    """A new password; the user's sessions end and any lockout is lifted."""
    user = await get_user(session, name)
    check_policy(password, user_name=user.name, min_length=auth.min_password_length)
    user.password_hash = await hash_password(password, auth)
    user.failed_attempts = 0
    user.locked_until = None
    ended = await end_sessions_of(session, user.id)
    await record_event(
        session,
        actor=actor,
        action="user.password_reset",
        target=f"user:{user.name}",
        details={"sessions_ended": ended},
    )
    return info(user)


async def enrol_totp(
    session: AsyncSession,
    name: str,
    *,
    sealer: totp.TotpSealer,
    issuer: str,
    actor: str,
) -> str:
    """A new TOTP secret for the user (any old one stops working); returns the
    provisioning URI, the only time the secret leaves the database unsealed."""
    user = await get_user(session, name)
    secret = totp.new_secret()
    replaced = user.totp_secret is not None
    user.totp_secret = sealer.seal(secret, user.id)
    user.totp_last_step = None
    await record_event(
        session,
        actor=actor,
        action="user.totp_enrolled",
        target=f"user:{user.name}",
        details={"replaced": replaced},
    )
    return totp.provisioning_uri(secret, user.name, issuer)


def principal_of(
    user: User,
    *,
    scopes: frozenset[str] | None = None,
    token_id: str | None = None,
    session_id: str | None = None,
) -> Principal:
    return Principal(
        user_id=user.id,
        name=user.name,
        role=Role(user.role),
        extensions=frozenset(split_extensions(user.extensions)),
        unmask=user.unmask,
        language=user.language,
        scopes=scopes,
        token_id=token_id,
        session_id=session_id,
    )
