"""What a route rings, and who of them took the call.

A route's target is one extension or a ring group (``group:sales``, ``calls/ring_groups``):
its members rung at once (``all``: the first to answer takes the call, the others are
hung up at once) or in turn (``order``: each for its own seconds). The dialer
(``flow/dial.py``) rings the waves this module plans; the call's outcome is one result
for the whole group, so a group nobody answers takes the route's usual busy / no-answer
path. The member who answered becomes the call's extension: its recording mode decides
(``policy.decide_recording``) and its own retention class, if it has one, keeps the
recordings, exactly as a single target extension does.

What the caller is told before anyone answers (the notice's days) cannot depend on who
will answer: a group's notice states the longest period any member would keep the call
for, so the period applied is never longer than the one the caller heard.

The choices (``ring_waves``, ``group_result``) are pure functions; the rest reads the
group with the route and writes the answer on the call's row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.models import Extension
from pbx_bridge.calls.retention import class_days
from pbx_bridge.calls.ring_groups import Member, get_group, group_of_target
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import RetentionSettings, RingStrategy
from pbx_bridge.flow.call_state import CallState
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.dial_result import DialResult


@dataclass(frozen=True)
class Ringing:
    """What one call rings: its members in order and how, and what each would keep."""

    strategy: RingStrategy
    members: tuple[Member, ...]
    # The group's name; None when the route rings a single extension.
    group: str | None = None
    # A group's members' retention: (extension, class, days), the member's own class or
    # else the route's (a single extension's is read with the route, as before groups).
    classes: tuple[tuple[str, str, int], ...] = ()

    @property
    def is_group(self) -> bool:
        return self.group is not None

    def class_of(self, extension: str) -> tuple[str, int] | None:
        """The retention class and days that apply when ``extension`` answers."""
        for member, name, days in self.classes:
            if member == extension:
                return name, days
        return None


def single(extension: str) -> Ringing:
    """A route whose target is one extension: it rings for ``[call] ring_timeout_s``."""
    return Ringing(RingStrategy.ORDER, (Member(extension, 0),))


def ring_waves(ringing: Ringing) -> list[tuple[Member, ...]]:
    """The members rung together, wave after wave: all at once, or one per wave."""
    if ringing.strategy is RingStrategy.ALL:
        return [ringing.members] if ringing.members else []
    return [(member,) for member in ringing.members]


def group_result(results: Sequence[DialResult]) -> DialResult:
    """One result for the whole group, from each member's.

    Anyone answered: answered. Otherwise a member who rang unanswered makes it a "no
    answer" (the group was reachable and nobody took the call); only a group where every
    member was busy (or busy and unreachable) is "busy"; only one none of whose members
    could be reached at all is "unreachable" (a group with no members too).
    """
    if DialResult.ANSWERED in results:
        return DialResult.ANSWERED
    if DialResult.NO_ANSWER in results:
        return DialResult.NO_ANSWER
    if DialResult.BUSY in results:
        return DialResult.BUSY
    return DialResult.UNREACHABLE


def ring_seconds(member: Member, default_s: int) -> int:
    """A group member's own seconds; a single extension rings the configured time."""
    return member.ring_s or default_s


def told_days(days: int, ringing: Ringing | None) -> int:
    """The days the notice states: ``days`` (the route's, or its single extension's
    class), or for a group the longest any member would keep the call."""
    if ringing is None or not ringing.classes:
        return days
    return max(kept for _, _, kept in ringing.classes)


async def what_rings(
    session: AsyncSession, route: ResolvedRoute, retention: RetentionSettings
) -> Ringing | None:
    """The route's target as the dialer rings it; None for a group that does not exist
    (the default route may name one nobody created): the call is then unreachable."""
    name = group_of_target(route.target)
    if name is None:
        return single(route.target)
    group = await get_group(session, name)
    if group is None:
        return None
    own = dict((await session.execute(
        select(Extension.number, Extension.retention_class).where(
            Extension.number.in_(group.extensions), Extension.retention_class.is_not(None))
    )).all())
    days: dict[str, int] = {}
    classes = []
    for extension in group.extensions:
        name = own.get(extension) or route.retention_class
        if name not in days:
            days[name] = await class_days(session, name, retention)
        classes.append((extension, name, days[name]))
    return Ringing(group.strategy, group.members, group=name, classes=tuple(classes))


async def what_rings_now(ctx: FlowContext, route: ResolvedRoute) -> Ringing | None:
    """``what_rings`` in a session of its own (a call adopted before anyone answered)."""
    async with ctx.sessions() as session:
        return await what_rings(session, route, ctx.retention)


async def record_answer(ctx: FlowContext, state: CallState, ringing: Ringing) -> None:
    """The call was answered: by a group's member, who becomes the call's extension and
    whose retention class keeps its recordings (on the call's row in the same UPDATE)."""
    assert state.call_id is not None
    kept = ringing.class_of(state.extension) if state.extension else None
    if not ringing.is_group or kept is None or state.extension is None:
        await ctx.journal.answered(state.call_id)
        return
    state.retention_class, state.retention_days = kept
    await ctx.journal.answered(state.call_id, by=(state.extension, state.retention_class))


__all__ = [
    "Ringing",
    "group_result",
    "record_answer",
    "ring_seconds",
    "ring_waves",
    "single",
    "told_days",
    "what_rings",
    "what_rings_now",
]
