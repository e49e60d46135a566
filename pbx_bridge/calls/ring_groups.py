"""Ring groups: several extensions behind one route target, rung at once or in turn.

A route's target is an extension (``101``) or a named group (``group:sales``), as FreePBX
and Wazo admins know them: one group, set once with ``pbx-bridge group set sales
--members 100:15,101:20 --strategy all``, is shared by every route that names it. Each
member rings for its own seconds. The extension that answers is the call's extension:
its recording mode and retention class apply.

Writers flush but do not commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.changes import SYSTEM_ACTOR, record_change, record_removal, snapshot
from pbx_bridge.calls.extensions import InvalidExtension, validate_extension
from pbx_bridge.calls.models import RingGroup, Route
from pbx_bridge.config import RingStrategy
from storage.models import utcnow

GROUP_PREFIX = "group:"
# Routes keep the target in 64 characters: "group:" and at most 58 more.
GROUP_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,57}$")
RING_SECONDS_RANGE = (5, 300)
MAX_MEMBERS = 32


class InvalidRingGroup(ValueError):
    """A group that cannot be stored; the message names the group and what is wrong,
    ``field`` the input it is about (``name``, ``members``, ``strategy``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownRingGroup(LookupError):
    """No ring group of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no ring group {name!r}: create it with `pbx-bridge group set {name} "
            "--members 100:15,101:20` (see `pbx-bridge group list`)"
        )
        self.name = name


class RingGroupInUse(ValueError):
    """A group some route (or the configured default route) still rings."""


@dataclass(frozen=True)
class Member:
    """One extension of a group and how long it rings before the group moves on."""

    extension: str
    ring_s: int

    def __str__(self) -> str:
        return f"{self.extension}:{self.ring_s}"


@dataclass(frozen=True)
class RingGroupInfo:
    name: str
    strategy: RingStrategy
    members: tuple[Member, ...]

    @property
    def target(self) -> str:
        return group_target(self.name)

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(member.extension for member in self.members)

    def describe(self) -> str:
        """"all: 100:15, 101:20" (as the admin typed it)."""
        return f"{self.strategy.value}: {', '.join(str(m) for m in self.members)}"


def group_target(name: str) -> str:
    return f"{GROUP_PREFIX}{name}"


def group_of_target(target: str) -> str | None:
    """The group a route target names (``group:sales`` -> ``sales``); None: an extension."""
    return target[len(GROUP_PREFIX):] if target.startswith(GROUP_PREFIX) else None


def validate_group_name(name: str) -> str:
    if not GROUP_NAME_PATTERN.fullmatch(name):
        raise InvalidRingGroup(
            f"invalid ring group name {name!r}: use 1-58 lowercase letters, digits, _ or -, "
            "starting with a letter or digit",
            field="name",
        )
    return name


def parse_members(name: str, spec: str, *, default_ring_s: int) -> tuple[Member, ...]:
    """``100:15,101:20`` (or ``100,101``: each rings ``default_ring_s``), checked:
    extension format, seconds in range, no extension twice, at least one."""
    parts = [part.strip() for part in spec.split(",")]
    if not any(parts):
        raise InvalidRingGroup(
            f"ring group {name}: --members is empty; name at least one extension, "
            "e.g. --members 100:15,101:20", field="members")
    members: list[Member] = []
    for part in parts:
        if not part:
            raise InvalidRingGroup(
                f"ring group {name}: --members {spec!r} has an empty entry (two commas?)",
                field="members")
        extension, sep, seconds = part.partition(":")
        members.append(_member(name, extension.strip(), seconds.strip() if sep else None,
                               default_ring_s))
    return check_members(name, members)


def _member(group: str, extension: str, seconds: str | None, default_ring_s: int) -> Member:
    try:
        validate_extension(extension)
    except InvalidExtension as exc:
        raise InvalidRingGroup(f"ring group {group}: member {exc}", field="members") from exc
    if seconds is None:
        return Member(extension, default_ring_s)
    if not seconds.isdigit():
        raise InvalidRingGroup(
            f"ring group {group}: member {extension}: {seconds!r} is not a number of "
            "seconds (e.g. 100:15)", field="members")
    return Member(extension, int(seconds))


def check_members(name: str, members: Sequence[Member]) -> tuple[Member, ...]:
    if not members:
        raise InvalidRingGroup(
            f"ring group {name}: no members; a group rings at least one extension",
            field="members")
    if len(members) > MAX_MEMBERS:
        raise InvalidRingGroup(
            f"ring group {name}: {len(members)} members; at most {MAX_MEMBERS}",
            field="members")
    low, high = RING_SECONDS_RANGE
    seen: set[str] = set()
    for member in members:
        try:
            validate_extension(member.extension)
        except InvalidExtension as exc:
            raise InvalidRingGroup(f"ring group {name}: member {exc}", field="members") from exc
        if not low <= member.ring_s <= high:
            raise InvalidRingGroup(
                f"ring group {name}: member {member.extension} rings {member.ring_s}s; "
                f"each member rings between {low} and {high} seconds", field="members")
        if member.extension in seen:
            raise InvalidRingGroup(
                f"ring group {name}: extension {member.extension} is a member twice",
                field="members")
        seen.add(member.extension)
    return tuple(members)


def _members_text(members: Sequence[Member]) -> str:
    return ",".join(str(member) for member in members)


def _members_of(text: str) -> tuple[Member, ...]:
    members = []
    for part in text.split(","):
        extension, _, seconds = part.partition(":")
        members.append(Member(extension, int(seconds)))
    return tuple(members)


def _info(row: RingGroup) -> RingGroupInfo:
    return RingGroupInfo(row.name, RingStrategy(row.strategy), _members_of(row.members))


async def set_group(
    session: AsyncSession,
    name: str,
    *,
    members: Sequence[Member] | None = None,
    strategy: RingStrategy | None = None,
    actor: str = SYSTEM_ACTOR,
) -> RingGroupInfo:
    """Create a group (``members`` required; strategy ``all`` unless given) or change
    its members or strategy. Audited as ``ring_group.created`` / ``.changed``."""
    validate_group_name(name)
    if members is not None:
        check_members(name, members)
    row = await session.get(RingGroup, name)
    before = None if row is None else snapshot(row)
    if row is None:
        if members is None:
            raise InvalidRingGroup(
                f"ring group {name} is new: give its --members, e.g. --members 100:15,101:20",
                field="members")
        row = RingGroup(name=name, strategy=(strategy or RingStrategy.ALL).value,
                        members=_members_text(members))
        session.add(row)
    else:
        if members is not None:
            row.members = _members_text(members)
        if strategy is not None:
            row.strategy = strategy.value
    row.updated_at = utcnow()
    await session.flush()
    await record_change(session, actor=actor, kind="ring_group", key=name, before=before,
                        after=snapshot(row))
    return _info(row)


async def group_users(session: AsyncSession, name: str, *, default_target: str) -> list[str]:
    """Who rings the group, one phrase each (empty: nobody; it may be removed)."""
    target = group_target(name)
    users: list[str] = []
    if default_target == target:
        users.append("the configured default route ([default_route] target)")
    routes = (await session.scalars(
        select(Route.did).where(Route.target == target).order_by(Route.did))).all()
    if routes:
        users.append(f"route(s) {', '.join(routes)}")
    return users


async def delete_group(
    session: AsyncSession, name: str, *, default_target: str, actor: str = SYSTEM_ACTOR
) -> None:
    """Remove a group no route rings; ``RingGroupInUse`` names the routes that do, so no
    route is left ringing nobody. Audited as ``ring_group.deleted``."""
    validate_group_name(name)
    row = await session.get(RingGroup, name)
    if row is None:
        raise UnknownRingGroup(name)
    users = await group_users(session, name, default_target=default_target)
    if users:
        raise RingGroupInUse(
            f"ring group {name!r} is rung by {'; '.join(users)} and cannot be removed: "
            "give them another --target first"
        )
    before = snapshot(row)
    await session.delete(row)
    await session.flush()
    await record_removal(session, actor=actor, kind="ring_group", key=name, before=before)


async def get_group(session: AsyncSession, name: str) -> RingGroupInfo | None:
    row = await session.get(RingGroup, name)
    return None if row is None else _info(row)


async def list_groups(session: AsyncSession) -> list[RingGroupInfo]:
    rows = (await session.scalars(select(RingGroup).order_by(RingGroup.name))).all()
    return [_info(row) for row in rows]


async def group_members_everywhere(session: AsyncSession) -> set[str]:
    """Every extension some group rings (a supervisor may be given their calls)."""
    return {e for group in await list_groups(session) for e in group.extensions}


async def validate_target(session: AsyncSession, target: str) -> str:
    """A route target: an extension, or ``group:NAME`` of a group that exists."""
    name = group_of_target(target)
    if name is None:
        return validate_extension(target)
    validate_group_name(name)
    if await session.get(RingGroup, name) is None:
        raise UnknownRingGroup(name)
    return target


async def target_extensions(
    session: AsyncSession, target: str
) -> tuple[RingStrategy, tuple[Member, ...]] | None:
    """What a route target rings: one extension (``ring_s`` 0: the configured ring
    time), or a group's members; None for a group that no longer exists."""
    name = group_of_target(target)
    if name is None:
        return RingStrategy.ORDER, (Member(target, 0),)
    group = await get_group(session, name)
    return None if group is None else (group.strategy, group.members)
