"""An admin's change to a user from the console or the API: carried out at once, left
waiting for a dpo's approval, or refused for root at the CLI, as
:func:`personal_data_grants.judge` decides; always on the users module's own functions
(the ones ``pbx-bridge users`` calls), so the checks and the audit entries are theirs.

A change that waits is checked first as far as it can be without doing it (the name,
the role, the extensions), so a dpo is never asked to approve what cannot be done; it is
kept as an approval (``users.grant``, pbx_bridge/subjects/approvals.py) and done when a
dpo approves (:func:`carry_out`, with the dpo as actor). Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.config import Role, Settings
from pbx_bridge.subjects.approvals import Approval, ApprovalAction, request_approval
from pbx_bridge.users.accounts import (
    DuplicateUser,
    InvalidUnmask,
    UserError,
    UserInfo,
    add_user,
    checked_extensions,
    get_user,
    info,
    normalise_name,
    reset_password,
    set_disabled,
    set_user,
    split_extensions,
)
from pbx_bridge.users.models import User
from pbx_bridge.users.passwords import new_password
from pbx_bridge.users.personal_data_grants import (
    ChangeKind,
    Current,
    UserChange,
    Who,
    judge,
    new_password_on_approval,
)


class NeedsRoot(UserError):
    """Refused in the console and the API: only root at the CLI does this (the message
    says the command)."""


@dataclass(frozen=True)
class Done:
    user: UserInfo
    # A new password, shown this once to whoever carried the change out.
    password: str | None = None


@dataclass(frozen=True)
class Waiting:
    approval: Approval
    reason: str  # why it waits (what the admin is told)


def current_of(user: User) -> Current:
    return Current(Role(user.role), split_extensions(user.extensions), user.unmask,
                   user.disabled)


async def _check(session: AsyncSession, change: UserChange, user: User | None,
                 settings: Settings) -> None:
    """What ``carry_out`` would refuse, refused now (UserError naming the problem)."""
    target = settings.default_route.target
    if change.kind is ChangeKind.ADD:
        name = normalise_name(change.name)
        if await session.scalar(select(User.id).where(User.name == name)) is not None:
            raise DuplicateUser(f"user {name!r} already exists")
        role = change.role or Role.AUDITOR
        await checked_extensions(session, role, change.extensions or (), target)
        return
    if change.kind is not ChangeKind.SET or user is None:
        return
    role = Role(user.role) if change.role is None else change.role
    if change.extensions is not None:
        wanted: tuple[str, ...] = change.extensions
    elif role is Role.SUPERVISOR:
        wanted = split_extensions(user.extensions)
    else:
        wanted = ()
    await checked_extensions(session, role, wanted, target)
    if change.unmask and role is not Role.SUPERVISOR:
        raise InvalidUnmask(f"--unmask is a supervisor's grant: a dpo always sees numbers, role"
                        f" {role.value} never")


async def ask(
    session: AsyncSession,
    change: UserChange,
    *,
    user_id: str,
    actor: str,
    settings: Settings,
) -> Done | Waiting:
    """Do ``change`` for the admin (``user_id``, audit ``actor``), or
    keep it for a dpo; ``NeedsRoot`` when neither may, ``UserError`` for bad input."""
    user = None if change.kind is ChangeKind.ADD else await get_user(session, change.name)
    current = None if user is None else current_of(user)
    by_self = user is not None and user.id == user_id
    verdict = judge(current, change, by_self=by_self)
    if verdict.who is Who.ROOT_ONLY:
        raise NeedsRoot(verdict.reason)
    await _check(session, change, user, settings)
    if verdict.who is Who.ADMIN:
        return await carry_out(session, change, actor=actor, settings=settings,
                               fresh_password=change.kind in (ChangeKind.ADD,
                                                              ChangeKind.RESET_PASSWORD))
    name = normalise_name(change.name)
    approval = await request_approval(
        session, ApprovalAction.USERS_GRANT, actor=actor, user_id=user_id,
        user_name=name, user_change=change.to_json(), note=change.describe(current),
    )
    return Waiting(approval, verdict.reason)


async def carry_out(
    session: AsyncSession,
    change: UserChange,
    *,
    actor: str,
    settings: Settings,
    fresh_password: bool,
) -> Done:
    """Do ``change`` with ``actor`` as the audit actor; ``fresh_password``: the user gets
    a new one (returned, shown once)."""
    auth, target = settings.auth, settings.default_route.target
    password = (new_password(user_name=normalise_name(change.name),
                             min_length=auth.min_password_length)
                if fresh_password else None)
    if change.kind is ChangeKind.ADD:
        assert password is not None
        made = await add_user(
            session, name=change.name, role=change.role or Role.AUDITOR, password=password,
            auth=auth, actor=actor, default_target=target,
            extensions=change.extensions or (), unmask=bool(change.unmask),
            language=change.language, require_totp=bool(change.require_totp),
        )
        return Done(made, password)
    if change.kind is ChangeKind.ENABLE:
        return Done(await set_disabled(session, change.name, disabled=False, actor=actor))
    if change.kind is ChangeKind.SET:
        changed = await set_user(
            session, change.name, actor=actor, default_target=target, role=change.role,
            extensions=change.extensions, unmask=change.unmask, language=change.language,
            require_totp=change.require_totp,
        )
        if password is None:
            return Done(changed)
    assert password is not None
    return Done(await reset_password(session, change.name, password, auth=auth, actor=actor),
                password)


async def carry_out_approved(
    session: AsyncSession, approval: Approval, *, actor: str, settings: Settings
) -> Done:
    """What a dpo approved (``users.grant``), done now with them as actor."""
    assert approval.user_change is not None, "a users.grant approval keeps its change"
    change = UserChange.from_json(approval.user_change)
    user = None
    if change.kind is not ChangeKind.ADD:
        user = await get_user(session, change.name)
    current = None if user is None else current_of(user)
    await _check(session, change, user, settings)
    return await carry_out(session, change, actor=actor, settings=settings,
                           fresh_password=new_password_on_approval(current, change))


async def user_info(session: AsyncSession, name: str) -> UserInfo:
    return info(await get_user(session, name))
