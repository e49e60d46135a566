"""What a call session needs from the service, wired explicitly in one place (service.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.journal import CallJournal
from pbx_bridge.config import (
    CallSettings,
    Language,
    OutboundRouteSettings,
    RetentionSettings,
    RouteSettings,
)
from pbx_bridge.flow.call_control import CallControl
from pbx_bridge.flow.inbox import CallInbox
from pbx_bridge.flow.prompts import PromptCatalogue
from pbx_bridge.subjects.index import SubjectIndex
from storage.pipeline import RecordingPipeline


class Ownership(Protocol):
    """The dispatcher's map from Asterisk objects to the call that owns them.

    A session claims a channel or bridge id *before* asking Asterisk to create it, so
    no event about it can arrive unowned.
    """

    def claim(self, object_id: str, inbox: CallInbox) -> None: ...

    def release(self, object_id: str) -> None: ...


@dataclass(frozen=True)
class FlowContext:
    # The real client (pbx_bridge.ari.AriClient) or the tests' fake Asterisk.
    ari: CallControl
    app: str
    sessions: async_sessionmaker[AsyncSession]
    journal: CallJournal
    pipeline: RecordingPipeline
    prompts: PromptCatalogue
    ownership: Ownership
    call: CallSettings
    retention: RetentionSettings
    default_route: RouteSettings
    default_language: Language
    # Who a caller is (subject key), e.g. to find them on the do-not-record list.
    subjects: SubjectIndex
    # Days to answer a request the caller opens by keypress ([privacy] due_days).
    request_due_days: int = 30
    # Region -> language for routes whose language follows the caller's country.
    country_languages: Mapping[str, str] = field(default_factory=dict)
    # What the callee of an agent's call out hears when no outbound route's prefix matches.
    default_outbound_route: OutboundRouteSettings = field(
        default_factory=OutboundRouteSettings
    )
