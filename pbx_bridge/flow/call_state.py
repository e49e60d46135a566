"""One call's state: who is on it, what Asterisk holds for it, what it started with.

The session, its inbox, the dialer, the recorder, the evidence clip and the resync all
read the same object instead of each keeping its own copy of the caller's id, the agent
leg, the bridge, the snoops and the running recording. The resync after a restart builds
one from the call's row and what Asterisk still holds (``adopted``) and hands it to a new
session, which carries on from there: with the route and legal basis the call started
with (the route snapshot stored on the row), never the route as it reads now.

Nothing here talks to Asterisk or the database; it is plain data with a few derived
answers (which ids the call owns, which leg's departure ends it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any, get_type_hints

from pbx_bridge.ari import Channel
from pbx_bridge.calls.journal import OpenCall
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import Announcement, Language, LegalBasis, RecordingMode, RouteSettings
from pbx_bridge.flow import names
from pbx_bridge.flow.policy import ConsentOutcome
from storage.legs import Layout, source_names
from storage.models import utcnow


@dataclass(frozen=True)
class LiveRecording:
    """The conversation recording running now: Asterisk's recordings to stop (one for a
    bridge recording, one per leg in stereo) and the snoops to hang up after."""

    names: tuple[str, ...]
    layout: Layout = Layout.MIXED
    snoops: tuple[str, ...] = ()
    # The row, and when Asterisk began writing (PCI pauses are offsets from it; for a
    # recording adopted after a restart, the row's start, a request earlier).
    recording_id: str | None = None
    started_at: datetime | None = None
    # A PCI pause found still on after a restart (Asterisk keeps the recording muted):
    # its row's id and start, so *6 or the time limit ends that very pause.
    open_pause: tuple[str, datetime] | None = None

    @classmethod
    def of_row(
        cls,
        asterisk_name: str,
        layout: str,
        *,
        recording_id: str | None = None,
        started_at: datetime | None = None,
        open_pause: tuple[str, datetime] | None = None,
    ) -> LiveRecording:
        """A row's recording found running after a restart; its layout is the row's,
        whatever the configuration says now, and a stereo one's snoops are its legs'."""
        legs = source_names(asterisk_name, layout)
        kind = Layout(layout)
        snoops = tuple(names.leg_snoop_id(n) for n in legs) if kind is Layout.STEREO else ()
        return cls(legs, kind, snoops, recording_id, started_at, open_pause)


@dataclass
class CallState:
    """Everything one call is, as the flow fills it in; one per call, shared."""

    caller: Channel
    direction: str
    did: str
    # The call's row, once opened (or the row an adopted call already had), and the
    # reference the caller may cite (None on calls from before references).
    call_id: str | None = None
    reference: str | None = None
    # The route as resolved when the call opened: its legal basis, announcement, language,
    # target and rules stay the call's for its whole life, also across a restart.
    route: ResolvedRoute | None = None
    # The extension's class if it has one, else the route's (resolved at the start), and
    # its days (read with the route: the notice says them; None on an adopted call).
    retention_class: str = ""
    retention_days: int | None = None
    # The language the caller hears when not the route's: their country's, or chosen by
    # key from the route's languages.
    heard_language: str | None = None
    # The language the call's row says (written when it opened, and again once the
    # caller chose another by key): what ``language_to_write`` compares with.
    row_language: str | None = None
    subject_key: str | None = None  # the caller's, when they have a public number
    do_not_record: bool = False  # listed at the start, or pressed 8 on this call
    consent: ConsentOutcome | None = None  # None until asked (or told, or not asked)
    caller_answered: bool = False
    # When the caller was answered (or, answered in the dialplan, reached us): the start
    # of the wait for the disclosure's first audio.
    answered_at: datetime = field(default_factory=utcnow)
    started_at: datetime = field(default_factory=utcnow)
    # The department's leg once answered (a ring group rings several; the dialer keeps
    # them until one answers).
    agent_id: str | None = None
    agent_answered: bool = False
    # The extension on the agent leg now: the ring group member who answered, or the one
    # a transfer handed the call on to (None: the route's target, which it reached first).
    agent_extension: str | None = None
    # A transfer is under way: the agent leaving then completes it (or, blind, changes
    # nothing) instead of ending the call; the transfer reads that departure itself.
    transferring: bool = False
    bridge_id: str | None = None
    joined: bool = False  # caller and agent are in the bridge
    evidence_snoop_id: str | None = None
    evidence_recording_id: str | None = None
    recording: LiveRecording | None = None
    # Found live after a restart (or a database outage) rather than seen arriving.
    adopted: bool = False
    # The campaign the dialplan tagged the call with (PBX_BRIDGE_CAMPAIGN), and its
    # recording mode once read (None: no campaign, or one nobody has set up).
    campaign: str | None = None
    campaign_recording: RecordingMode | None = None

    @classmethod
    def arriving(cls, caller: Channel, *, direction: str, did: str) -> CallState:
        """A caller who just entered the app."""
        return cls(caller, direction, did, caller_answered=caller.state == "Up")

    @property
    def caller_id(self) -> str:
        return self.caller.id

    @property
    def connected_agent_id(self) -> str | None:
        """The agent leg once it answered: before that its hangup is a dial result the
        flow wants to see, not the end of the call."""
        if self.transferring:
            return None
        return self.agent_id if self.agent_answered else None

    @property
    def extension(self) -> str:
        """The extension talking with the caller now (or ringing, or last to)."""
        return self.agent_extension or self.known_route.target

    @property
    def legal_basis(self) -> LegalBasis:
        return self.known_route.legal_basis

    @property
    def known_route(self) -> ResolvedRoute:
        if self.route is None:
            raise RuntimeError("the call's route is not resolved yet")
        return self.route

    @property
    def language(self) -> str:
        """What the caller hears: their country's or chosen language, else the route's."""
        return self.heard_language or self.known_route.language.value

    def language_to_write(self) -> str | None:
        """The language heard, when the call's row does not say it yet (chosen by key
        after the row was opened); None when it does."""
        language = self.language
        return None if language == self.row_language else language

    def owned_ids(self) -> tuple[str, ...]:
        """Every Asterisk object of this call, for the dispatcher's ownership map."""
        ids = [self.caller.id]
        for object_id in (self.agent_id, self.bridge_id, self.evidence_snoop_id):
            if object_id is not None:
                ids.append(object_id)
        if self.recording is not None:
            ids.extend(self.recording.snoops)
        return tuple(ids)


# -- the route snapshot on the call's row ---------------------------------------------------


def route_snapshot(route: ResolvedRoute) -> str:
    """The route as the call started with it, for the row (``calls.route_snapshot``):
    every field of ``ResolvedRoute``, so a field added to routes is kept too."""
    return json.dumps(
        {f.name: _plain(getattr(route, f.name)) for f in fields(route)}, separators=(",", ":")
    )


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def route_started_with(row: OpenCall, default: RouteSettings) -> ResolvedRoute:
    """The route an adopted call keeps: its snapshot, or for a row written before the
    snapshot existed, the row's own columns (legal basis, announcement, language,
    target, class) with the configured default's rules for what the row lacks."""
    if row.route_snapshot:
        try:
            return _route_from_json(json.loads(row.route_snapshot))
        except (ValueError, KeyError, TypeError):
            pass  # a damaged snapshot: the columns below are still the call's own
    return ResolvedRoute(
        did=row.did,
        target=row.extension or default.target,
        announcement=Announcement(row.announcement),
        language=Language(row.language),
        legal_basis=LegalBasis(row.legal_basis),
        timeout_means=default.timeout_means,
        prompt_timeout_s=default.prompt_timeout_s,
        retention_class=row.retention_class,
        is_default=False,
        offer_withdrawal=default.offer_withdrawal,
    )


def _route_from_json(data: dict[str, Any]) -> ResolvedRoute:
    """A snapshot back to the route; a field the snapshot lacks (written before the field
    existed) takes its default, and one it must have but lacks raises (TypeError)."""
    hints = get_type_hints(ResolvedRoute)
    values: dict[str, Any] = {}
    for f in fields(ResolvedRoute):
        if f.name not in data:
            continue
        value, kind = data[f.name], hints[f.name]
        if isinstance(kind, type) and issubclass(kind, Enum):
            value = kind(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return ResolvedRoute(**values)


__all__ = [
    "CallState",
    "LiveRecording",
    "route_snapshot",
    "route_started_with",
]
