"""The command queue: a request to the service that owns a call, as one row of
``call_commands``, from asked to answered.

The web console and the CLI are processes of their own, and with several Asterisk
nodes on one database they do not know which ``pbx-bridge run`` holds a call. So they
write the command, and every service looks at the commands nobody has taken: the one
that owns the call takes it with a compare-and-set on ``taken_at`` (two nodes never both
act on one), carries it out and writes the outcome in the same row, where the asker
reads it. On PostgreSQL the insert also NOTIFYs the services, so they look at once;
on SQLite they look every ``[commands] poll_interval_s``.

A command nobody took by ``expires_at`` is never taken afterwards (the take asks for an
unexpired row) and is answered ``expired``: no running service owns that call. One that
was taken but never answered (its service stopped in the middle) reads ``unanswered``
after ``ANSWER_WITHIN_S``. Each step is audited: ``command.requested`` with the person
or token that asked, ``command.finished`` with the service node that answered (or
``command.expired``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import CallCommand
from storage.audit_trail import record_event
from storage.models import new_id, utcnow

# PostgreSQL's channel the services LISTEN on; the payload is the command's id.
NOTIFY_CHANNEL = "pbx_bridge_commands"
# A taken command still unanswered after this long: its service stopped mid-way.
ANSWER_WITHIN_S = 30.0


class CommandKind(StrEnum):
    PAUSE = "pause"  # PCI pause of the call's recording, as the agent's *5
    RESUME = "resume"  # its end, as *6
    ORIGINATE = "originate"  # click-to-call: ring the agent, then the customer
    TRANSFER = "transfer"  # hand the call to an extension, as the agent's *8 / *9


class Outcome(StrEnum):
    DONE = "done"
    REFUSED = "refused"  # the call's state does not allow it (not recording, not paused)
    FAILED = "failed"  # the service tried and could not (Asterisk refused, call ended)
    EXPIRED = "expired"  # no service took it in time


class CommandState(StrEnum):
    """What the asker sees: the outcome once there is one, else where it is."""

    PENDING = "pending"
    TAKEN = "taken"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
    EXPIRED = "expired"
    UNANSWERED = "unanswered"


def command_state(
    *,
    outcome: str | None,
    taken_at: datetime | None,
    expires_at: datetime,
    now: datetime,
) -> CommandState:
    """A command's state at ``now`` (pure: the row's facts and the clock).

    An untaken command past its expiry is ``expired`` even before anyone wrote that
    down: no service may take it any more.
    """
    if outcome is not None:
        return CommandState(outcome)
    if taken_at is None:
        return CommandState.PENDING if now < expires_at else CommandState.EXPIRED
    if now - taken_at > timedelta(seconds=ANSWER_WITHIN_S):
        return CommandState.UNANSWERED
    return CommandState.TAKEN


@dataclass(frozen=True)
class CommandView:
    """One command as the API and the CLI show it."""

    id: str
    call_id: str | None
    node: str | None
    kind: str
    arguments: dict[str, Any]
    requested_by: str
    created_at: datetime
    expires_at: datetime
    taken_at: datetime | None
    taken_by: str | None
    finished_at: datetime | None
    state: CommandState
    result: dict[str, Any] | None
    error: str | None

    @property
    def settled(self) -> bool:
        return self.state not in (CommandState.PENDING, CommandState.TAKEN)

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "id": self.id, "call_id": self.call_id, "node": self.node, "kind": self.kind,
            "arguments": self.arguments, "requested_by": self.requested_by,
            "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
            "taken_at": iso(self.taken_at), "taken_by": self.taken_by,
            "finished_at": iso(self.finished_at), "state": self.state.value,
            "result": self.result, "error": self.error,
        }


def view_of(row: CallCommand, now: datetime | None = None) -> CommandView:
    return CommandView(
        id=row.id, call_id=row.call_id, node=row.node, kind=row.kind,
        arguments=json.loads(row.arguments or "{}"), requested_by=row.requested_by,
        created_at=row.created_at, expires_at=row.expires_at, taken_at=row.taken_at,
        taken_by=row.taken_by, finished_at=row.finished_at,
        state=command_state(outcome=row.outcome, taken_at=row.taken_at,
                            expires_at=row.expires_at, now=now or utcnow()),
        result=None if row.result is None else json.loads(row.result), error=row.error,
    )


@dataclass(frozen=True)
class PendingCommand:
    """What a service needs to decide whether a command is its own to take."""

    id: str
    call_id: str | None
    node: str | None
    kind: str


@dataclass(frozen=True)
class TakenCommand:
    """A command this service took: carry it out, then ``finish`` it."""

    id: str
    call_id: str | None
    kind: str
    arguments: dict[str, Any]
    requested_by: str


def _target(call_id: str | None, command_id: str) -> str:
    return f"call:{call_id}" if call_id is not None else f"command:{command_id}"


async def submit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    kind: CommandKind,
    call_id: str | None,
    arguments: dict[str, Any],
    actor: str,
    take_within_s: float,
    node: str | None = None,
) -> str:
    """Write the command and its ``command.requested`` entry; wake the services."""
    command_id = new_id()
    now = utcnow()
    async with sessions() as session:
        session.add(CallCommand(
            id=command_id, call_id=call_id, node=node, kind=kind.value,
            arguments=json.dumps(arguments, sort_keys=True), requested_by=actor,
            created_at=now, expires_at=now + timedelta(seconds=take_within_s),
        ))
        await record_event(
            session, actor=actor, action="command.requested",
            target=_target(call_id, command_id),
            details={"command": command_id, "kind": kind.value, "arguments": arguments,
                     **({"node": node} if node else {})},
            at=now,
        )
        if session.get_bind().dialect.name == "postgresql":
            # Delivered at commit, so a woken service always finds the row.
            await session.execute(text("SELECT pg_notify(:channel, :id)"),
                                  {"channel": NOTIFY_CHANNEL, "id": command_id})
        await session.commit()
    return command_id


async def pending(session: AsyncSession, now: datetime) -> list[PendingCommand]:
    """The commands nobody has taken and that may still be taken (few at any time)."""
    rows = await session.execute(
        select(CallCommand.id, CallCommand.call_id, CallCommand.node, CallCommand.kind)
        .where(CallCommand.taken_at.is_(None), CallCommand.expires_at > now)
        .order_by(CallCommand.expires_at)
    )
    return [PendingCommand(*row) for row in rows.all()]


async def take(
    sessions: async_sessionmaker[AsyncSession], command_id: str, *, node: str
) -> TakenCommand | None:
    """Take the command if nobody has and it has not expired (compare-and-set); None
    when another service was first or it is too late."""
    now = utcnow()
    async with sessions() as session:
        taken = await session.execute(
            update(CallCommand)
            .where(CallCommand.id == command_id, CallCommand.taken_at.is_(None),
                   CallCommand.finished_at.is_(None), CallCommand.expires_at > now)
            .values(taken_at=now, taken_by=node)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            await session.rollback()
            return None
        row = await session.get(CallCommand, command_id)
        assert row is not None
        command = TakenCommand(
            id=row.id, call_id=row.call_id, kind=row.kind,
            arguments=json.loads(row.arguments or "{}"), requested_by=row.requested_by,
        )
        await session.commit()
    return command


async def finish(
    sessions: async_sessionmaker[AsyncSession],
    command: TakenCommand,
    *,
    node: str,
    outcome: Outcome,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """The outcome, once, and its ``command.finished`` entry (actor: the service node)."""
    now = utcnow()
    async with sessions() as session:
        await session.execute(
            update(CallCommand)
            .where(CallCommand.id == command.id, CallCommand.finished_at.is_(None))
            .values(finished_at=now, outcome=outcome.value,
                    result=None if result is None else json.dumps(result, sort_keys=True),
                    error=error)
        )
        await record_event(
            session, actor=f"service:{node}", action="command.finished",
            target=_target(command.call_id, command.id),
            outcome="ok" if outcome is Outcome.DONE else outcome.value,
            details={"command": command.id, "kind": command.kind,
                     "requested_by": command.requested_by,
                     **({"error": error} if error else {})},
            at=now,
        )
        await session.commit()


async def expire(sessions: async_sessionmaker[AsyncSession], command_id: str) -> bool:
    """Write down that nobody took it (compare-and-set, so once); audited."""
    now = utcnow()
    async with sessions() as session:
        row = await session.get(CallCommand, command_id)
        if row is None:
            return False
        done = await session.execute(
            update(CallCommand)
            .where(CallCommand.id == command_id, CallCommand.taken_at.is_(None),
                   CallCommand.finished_at.is_(None), CallCommand.expires_at <= now)
            .values(finished_at=now, outcome=Outcome.EXPIRED.value,
                    error=no_service_message(row.call_id))
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            await session.rollback()
            return False
        await record_event(
            session, actor=row.requested_by, action="command.expired",
            target=_target(row.call_id, command_id), outcome="expired",
            details={"command": command_id, "kind": row.kind}, at=now,
        )
        await session.commit()
    return True


def no_service_message(call_id: str | None) -> str:
    if call_id is None:
        return "no pbx-bridge service took the command in time: is `pbx-bridge run` running?"
    return ("no pbx-bridge service owns this call: it is not live on any running node "
            "(the service is stopped, or the call has just ended)")


async def read(
    sessions: async_sessionmaker[AsyncSession], command_id: str
) -> CommandView | None:
    async with sessions() as session:
        row = await session.get(CallCommand, command_id)
        return None if row is None else view_of(row)


async def wait_for_outcome(
    sessions: async_sessionmaker[AsyncSession], command_id: str, *, limit_s: float
) -> CommandView:
    """The command once settled, or as it is after ``limit_s``.

    Polled, a little slower each time (the outcome of a pause comes back within a few
    tens of milliseconds; a click-to-call takes as long as the agent lets it ring). An
    untaken command past its expiry is written down as expired here.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    delay = 0.02
    while True:
        view = await read(sessions, command_id)
        if view is None:
            raise LookupError(command_id)
        if view.state is CommandState.EXPIRED and view.finished_at is None:
            await expire(sessions, command_id)
            refreshed = await read(sessions, command_id)
            assert refreshed is not None
            return refreshed
        remaining = deadline - loop.time()
        if view.state is CommandState.PENDING:
            # Nobody has taken it yet: wait until it is taken or expires, so the asker
            # hears either its outcome or that no service owns the call, never "pending".
            until_expiry = (view.expires_at - utcnow()).total_seconds() + 0.05
            remaining = max(remaining, until_expiry)
        if view.settled or remaining <= 0:
            return view
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)
