"""Asterisk's word that a recording ended, handed to storage beside the event stream.

The dispatcher routes every event of every call. While it waited for storage to commit a
recording's end (a read, an update, a commit and its fsync), the events of all the other
calls waited too: their keys, their playbacks' starts and ends, their agents' answers.
Under load, with two recordings ending per call, those waits added up for everyone.
Ends now queue here and one task hands them to the pipeline in arrival
order (a recording that failed after it finished is still told in that order), while
the dispatcher goes straight on to the calls.

Nothing is lost by it: an end not yet handed over when the service stops (or while the
database is away) leaves its row ``recording``, and the pipeline's resume, run by the
next resync, asks Asterisk about every such row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from pbx_bridge.ari import events as ev
from storage.database import database_unavailable
from storage.pipeline import RecordingPipeline

RecordingEnd = ev.RecordingFinished | ev.RecordingFailed


class RecordingEnds:
    """``put`` from the dispatcher; ``async with`` runs the task that drains the queue."""

    def __init__(
        self,
        pipeline: RecordingPipeline,
        database_lost: Callable[[BaseException], None],
    ) -> None:
        self._pipeline = pipeline
        self._database_lost = database_lost
        self._queue: asyncio.Queue[RecordingEnd] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._raised = False  # the task's failure went to the dispatcher already

    async def __aenter__(self) -> RecordingEnds:
        self._task = asyncio.create_task(self._run(), name="recording ends")
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        if task is None or self._raised:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def put(self, event: RecordingEnd) -> None:
        """Queue an end; a failure the task could not handle is raised here, to the
        dispatcher, as it was when the dispatcher handed ends over itself."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._raised = True
            self._task.result()
        self._queue.put_nowait(event)

    async def idle(self) -> None:
        """Every end queued so far has been handed over (for tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._hand_over(event)
            finally:
                self._queue.task_done()

    async def _hand_over(self, event: RecordingEnd) -> None:
        try:
            if isinstance(event, ev.RecordingFinished):
                await self._pipeline.finished(event.recording.name)
            else:
                await self._pipeline.failed_by_name(
                    event.recording.name, event.recording.cause or "Asterisk reported failure"
                )
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            # The row stays `recording`; the resync asks Asterisk about it later.
            self._database_lost(exc)
