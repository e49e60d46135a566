"""The service's side of the command queue: look for commands, take the ones that are
ours, carry them out beside the calls, write their outcomes.

Whose a command is, the desk says (``CommandDesk.takes``: this service holds the call,
or the command asks for a new call and names this node or none). Taking is the queue's
compare-and-set, so when two nodes both think a command theirs only one acts. Each
command runs in a task of its own: a click-to-call that rings for 30 s does not hold
back a pause asked meanwhile.

On PostgreSQL a LISTEN connection wakes the look at once (``NOTIFY`` at the command's
commit), and a slow poll covers a lost connection; on SQLite the poll is all there is,
every ``[commands] poll_interval_s``. A look costs one indexed query of the untaken rows,
whatever the number of live calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pbx_bridge.ari import AriError
from pbx_bridge.commands import queue
from pbx_bridge.commands.queue import NOTIFY_CHANNEL, Outcome, PendingCommand, TakenCommand
from storage.database import database_unavailable
from storage.models import utcnow

log = logging.getLogger(__name__)

# On PostgreSQL the poll only covers a LISTEN connection that was lost.
LISTENING_POLL_FACTOR = 10.0
_RELISTEN_S = 2.0


@dataclass(frozen=True)
class CommandAnswer:
    """What carrying out a command came to: its outcome, a result or why not."""

    outcome: Outcome
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class CommandDesk(Protocol):
    """The part of the service that acts on commands (live calls, click-to-call)."""

    def takes(self, command: PendingCommand) -> bool:
        """Is this command this service's to take? (No I/O: asked on every look.)"""
        ...

    async def carry_out(self, command: TakenCommand) -> CommandAnswer: ...


class CommandTaker:
    """Runs while the service does (``async with``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        desk: CommandDesk,
        *,
        node: str,
        poll_interval_s: float,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._desk = desk
        self._node = node
        self._listens = engine.dialect.name == "postgresql"
        self._poll_s = poll_interval_s * (LISTENING_POLL_FACTOR if self._listens else 1.0)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: list[asyncio.Task[None]] = []
        self._database_away = False

    def wake(self) -> None:
        """Look now (a new call that may have commands waiting, a NOTIFY)."""
        self._wake.set()

    async def __aenter__(self) -> CommandTaker:
        self._running.append(asyncio.create_task(self._look_loop(), name="command taker"))
        if self._listens:
            self._running.append(asyncio.create_task(self._listen_loop(), name="command listen"))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in [*self._running, *self._tasks]:
            task.cancel()
        for task in [*self._running, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _look_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            self._wake.clear()
            await self.look()

    async def look(self) -> None:
        """Take and start every command that is ours; a database away is waited out."""
        try:
            async with self._sessions() as session:
                waiting = await queue.pending(session, utcnow())
            for command in waiting:
                if not self._desk.takes(command):
                    continue
                taken = await queue.take(self._sessions, command.id, node=self._node)
                if taken is None:
                    continue  # another node was first, or it just expired
                log.info("command %s (%s) taken for call %s", taken.id, taken.kind,
                         taken.call_id or "-")
                self._start(taken)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            if not self._database_away:
                log.warning("commands: the database is away (%s); looking again later", exc)
            self._database_away = True
            return
        self._database_away = False

    def _start(self, command: TakenCommand) -> None:
        task = asyncio.create_task(self._carry_out(command), name=f"command {command.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _carry_out(self, command: TakenCommand) -> None:
        try:
            answer = await self._desk.carry_out(command)
        except AriError as exc:
            answer = CommandAnswer(Outcome.FAILED, error=f"Asterisk refused: {exc}")
        except Exception as exc:
            if not database_unavailable(exc):
                log.error("command %s: failed", command.id, exc_info=exc)
            answer = CommandAnswer(Outcome.FAILED, error="the service could not carry it out")
        try:
            await queue.finish(
                self._sessions, command, node=self._node, outcome=answer.outcome,
                result=answer.result or None, error=answer.error,
            )
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning("command %s: its outcome (%s) could not be written: %s",
                        command.id, answer.outcome.value, exc)

    async def _listen_loop(self) -> None:
        """Hold a LISTEN connection; when it goes, poll meanwhile and listen again."""
        while True:
            try:
                await self._listen_once()
            except Exception as exc:
                if not database_unavailable(exc) and not isinstance(exc, OSError):
                    raise
                log.warning("commands: LISTEN %s lost (%s); polling until it is back",
                            NOTIFY_CHANNEL, exc)
            await asyncio.sleep(_RELISTEN_S)

    async def _listen_once(self) -> None:
        closed = asyncio.Event()
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection

            def notified(*_args: object) -> None:
                self._wake.set()

            def terminated(*_args: object) -> None:
                closed.set()

            await driver.add_listener(NOTIFY_CHANNEL, notified)
            driver.add_termination_listener(terminated)
            self._wake.set()  # what was written while nobody listened
            try:
                await closed.wait()
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(NOTIFY_CHANNEL, notified)
                driver.remove_termination_listener(terminated)

