"""The real call flow over the scripted fake Asterisk, a real database and the real
storage pipeline: what the branch tests (tests/test_flow_branches.py) run a call on.

``FlowRig.start`` runs a ``StasisApp`` (the service's dispatcher, resync and sessions,
unchanged) reading the fake's event stream; ``restart`` stops it as a service shutdown
does (calls left to Asterisk) and starts a new one on the same Asterisk, which adopts
them. ``ended_call`` waits until a call's row is closed and its recordings are stored
or failed, and returns what the database holds for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_ari import FakeAsterisk
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import DirSource

from pbx_bridge.calls.extensions import set_extension
from pbx_bridge.calls.journal import CallJournal
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.routes import set_route
from pbx_bridge.config import (
    CallSettings,
    Language,
    RecordingMode,
    RetentionSettings,
    RouteSettings,
)
from pbx_bridge.flow.app import ChannelOwnership, StasisApp
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.prompts import REQUIRED_PROMPTS, Prompt, PromptCatalogue
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.backends.local import LocalBackend
from storage.models import Recording
from storage.pipeline import RecordingPipeline

INDEX = SubjectIndex(SubjectKeyer(b"\x0b" * 32), "TR")
SETTLED = ("stored", "failed")


def catalogue() -> PromptCatalogue:
    """Every prompt the flow may play, in both languages, version v1."""
    return PromptCatalogue(
        Prompt(name, lang, "v1", "a" * 64, "b" * 64, 1.0, f"sound:pbx-bridge/{lang}/{name}")
        for lang in ("tr", "en")
        for name in REQUIRED_PROMPTS
    )


@dataclass
class EndedCall:
    call: Call
    consent: Consent | None
    recordings: list[Recording]

    def of_kind(self, kind: str) -> list[Recording]:
        return [r for r in self.recordings if r.kind == kind]


@dataclass
class FlowRig:
    sessions: async_sessionmaker[AsyncSession]
    work: Path
    call: CallSettings = field(default_factory=lambda: CallSettings(ring_timeout_s=5))
    default_route: RouteSettings = field(
        default_factory=lambda: RouteSettings(prompt_timeout_s=1)
    )
    # [prompts] country_languages: routes with language_by_country follow the caller's.
    country_languages: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = DirSource(self.work / "asterisk")
        self.asterisk = FakeAsterisk(self.source)
        self.pipeline = RecordingPipeline(
            self.sessions, self.source, self.work / "spool", LocalBackend(self.work / "stored"),
            retry_initial_s=0.01, retry_max_s=0.05, stop_timeout_s=0.5,
            # As the service has it; a row still being prepared when its call closes is
            # copied by the next sweep (storage/pipeline.py), so sweep often here.
            copy_after_call_ends=True, sweep_interval_s=0.1,
        )
        self.app: StasisApp | None = None
        self._task: asyncio.Task[None] | None = None

    def context(self, ownership: ChannelOwnership) -> FlowContext:
        return FlowContext(
            ari=self.asterisk, app="pbx-bridge", sessions=self.sessions,
            journal=CallJournal(self.sessions, INDEX), pipeline=self.pipeline,
            prompts=catalogue(), ownership=ownership, call=self.call,
            retention=RetentionSettings(), default_route=self.default_route,
            default_language=Language.TR, subjects=INDEX,
            country_languages=self.country_languages,
        )

    async def start(self) -> None:
        ownership = ChannelOwnership()
        self.app = StasisApp(self.context(ownership), ownership)
        self._task = asyncio.create_task(self.app.run(self.asterisk.stream()))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FlowRig]:
        """The pipeline and the app running, stopped (as at a shutdown) afterwards."""
        async with self.pipeline:
            await self.start()
            try:
                yield self
            finally:
                await self.stop()

    async def stop(self) -> None:
        """Stop the app as a service shutdown does: live calls are left to Asterisk."""
        task, self._task = self._task, None
        if task is None:
            return
        self.asterisk.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def ended_call(self, timeout_s: float = 10.0) -> EndedCall:
        """The one call, once closed with every recording stored or failed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        found: EndedCall | None = None
        while loop.time() < deadline:
            found = await self._call()
            if found is not None and found.call.ended_at is not None and all(
                r.status in SETTLED and r.retain_until is not None for r in found.recordings
            ):
                return found
            await asyncio.sleep(0.02)
        state = "no call" if found is None else (
            f"ended_at={found.call.ended_at} disposition={found.call.disposition} "
            f"recordings={[(r.kind, r.status, r.retain_until) for r in found.recordings]}")
        raise AssertionError(
            f"the call did not end and settle within {timeout_s}s: {state}; "
            f"requests: {[(r.method, r.target, r.detail) for r in self.asterisk.requests]}")

    async def _call(self) -> EndedCall | None:
        async with self.sessions() as session:
            calls = list(await session.scalars(select(Call)))
            if not calls:
                return None
            (call,) = calls
            consent = await session.scalar(select(Consent).where(Consent.call_id == call.id))
            recordings = list(await session.scalars(
                select(Recording).where(Recording.call_id == call.id)
                .order_by(Recording.started_at)
            ))
        return EndedCall(call, consent, recordings)

    async def route(self, did: str = "2125550100", **fields: Any) -> None:
        async with self.sessions() as session:
            await set_route(session, did, default=self.default_route,
                            default_language=Language.TR, **fields)
            await session.commit()

    async def extension(self, number: str, recording: str) -> None:
        async with self.sessions() as session:
            await set_extension(session, number, RecordingMode(recording))
            await session.commit()


__all__ = ["INDEX", "EndedCall", "FlowRig", "catalogue"]
