"""What happened on past calls, as plain data for people and scripts (CLI, later an API).

Views carry full numbers; ``masked()`` gives the copy fit for a screen. Keeping the
mask on the view, not in each printer, makes privacy the default path for every reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.reference import parse_reference
from pbx_bridge.calls.transfers import TransferView, handled_by, transfers_of
from pbx_bridge.privacy import mask_number
from storage.models import Recording

DEFAULT_LIMIT = 50
# Numbers reach us as 05321234567, +905321234567 or 5321234567; the last ten digits
# are the national significant number in Turkey and most of Europe.
SUFFIX_DIGITS = 10

JsonObject = dict[str, object]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, the one spelling scripts should have to parse."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ConsentView:
    id: str
    call_id: str
    caller: str | None
    decision: str
    digit: str | None
    language: str
    prompt_name: str | None
    prompt_version: str | None
    prompt_sha256: str | None
    times_played: int
    evidence_recording_id: str | None
    at: datetime
    disclosure_started_at: datetime | None = None
    answer_to_disclosure_s: float | None = None
    # The dialogue's keys in order; "before_disclosure" marks an early key (no answer).
    key_history: tuple[JsonObject, ...] = ()
    # Every prompt segment heard, in order: name, version, audio_sha256, text_sha256.
    prompt_segments: tuple[JsonObject, ...] = ()

    @property
    def early_keys(self) -> list[str]:
        return list(early_digits(self.key_history))

    def masked(self) -> ConsentView:
        return replace(self, caller=mask_number(self.caller))

    def to_json(self, *, with_call: bool = True) -> JsonObject:
        data: JsonObject = {
            "decision": self.decision,
            "digit": self.digit,
            "prompt_version": self.prompt_version,
            "prompt_sha256": self.prompt_sha256,
            "at": iso(self.at),
            "language": self.language,
            "evidence_recording_id": self.evidence_recording_id,
            "prompt_name": self.prompt_name,
            "times_played": self.times_played,
            "disclosure_started_at": iso(self.disclosure_started_at),
            "answer_to_disclosure_s": self.answer_to_disclosure_s,
            "early_keys": self.early_keys,
            "key_history": list(self.key_history),
            "prompt_segments": list(self.prompt_segments),
        }
        if with_call:
            data = {"id": self.id, "call_id": self.call_id, "caller": self.caller, **data}
        return data


@dataclass(frozen=True)
class RecordingView:
    id: str
    call_id: str
    # The call's caller; None when the call row is missing (the storage layer can
    # hold recordings fed by other sources than our call flow).
    caller: str | None
    kind: str
    status: str
    format: str
    duration_s: float | None
    sha256: str | None
    size_bytes: int | None
    legal_basis: str
    retention_class: str
    retain_until: datetime | None
    location: str | None
    started_at: datetime
    # "mixed" (one channel) or "stereo" (caller left, agent right)
    layout: str = "mixed"

    def masked(self) -> RecordingView:
        return replace(self, caller=mask_number(self.caller))

    def to_json(self, *, with_call: bool = True) -> JsonObject:
        data: JsonObject = {
            "id": self.id,
            "kind": self.kind,
            "format": self.format,
            "layout": self.layout,
            "duration_s": self.duration_s,
            "sha256": self.sha256,
            "retain_until": iso(self.retain_until),
            "location": self.location,
            "status": self.status,
            "legal_basis": self.legal_basis,
            "size_bytes": self.size_bytes,
            "retention_class": self.retention_class,
            "started_at": iso(self.started_at),
        }
        if with_call:
            data = {**data, "call_id": self.call_id, "caller": self.caller}
        return data


@dataclass(frozen=True)
class CallView:
    id: str
    # Nine digits the caller heard and may quote (None: a call from before 0010).
    reference: str | None
    linkedid: str
    direction: str
    caller: str | None
    did: str
    extension: str | None
    language: str
    legal_basis: str
    retention_class: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    # answered, abandoned, no-answer, busy, failed; None while the call is live.
    disposition: str | None
    consent: ConsentView | None
    recordings: tuple[RecordingView, ...]
    # Every transfer tried or made, in order (calls/transfers.py); extensions, no numbers.
    transfers: tuple[TransferView, ...] = ()
    campaign: str | None = None

    @property
    def handled_by(self) -> list[dict[str, object]]:
        """The extensions that talked with the caller, in turn, from when to when."""
        return handled_by(self.extension, self.answered_at, self.ended_at, self.transfers)

    def masked(self) -> CallView:
        return replace(
            self,
            caller=mask_number(self.caller),
            consent=None if self.consent is None else self.consent.masked(),
            recordings=tuple(recording.masked() for recording in self.recordings),
        )

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "reference": self.reference,
            "linkedid": self.linkedid,
            "direction": self.direction,
            "caller": self.caller,
            "did": self.did,
            "extension": self.extension,
            "started_at": iso(self.started_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "disposition": self.disposition,
            "language": self.language,
            "legal_basis": self.legal_basis,
            "retention_class": self.retention_class,
            "campaign": self.campaign,
            "consent": None if self.consent is None else self.consent.to_json(with_call=False),
            "recordings": [r.to_json(with_call=False) for r in self.recordings],
            "handled_by": self.handled_by,
            "transfers": [t.to_json() for t in self.transfers],
        }


def number_digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _number_matches(column: InstrumentedAttribute[str | None], number: str) -> ColumnElement[bool]:
    """Exact match, or the same last ten digits when the query has that many.

    Shorter queries (extensions, short codes) only match exactly: a suffix of four
    digits would find strangers' calls.
    """
    digits = number_digits(number)
    if len(digits) < SUFFIX_DIGITS:
        return column == number
    return or_(column == number, column.like(f"%{digits[-SUFFIX_DIGITS:]}"))


def consent_view(row: Consent) -> ConsentView:
    return ConsentView(
        id=row.id,
        call_id=row.call_id,
        caller=row.caller,
        decision=row.decision,
        digit=row.digit,
        language=row.language,
        prompt_name=row.prompt_name,
        prompt_version=row.prompt_version,
        prompt_sha256=row.prompt_sha256,
        times_played=row.times_played,
        evidence_recording_id=row.evidence_recording_id,
        at=row.decided_at,
        disclosure_started_at=row.disclosure_started_at,
        answer_to_disclosure_s=row.answer_to_disclosure_s,
        key_history=key_history_of(row),
        prompt_segments=tuple(json.loads(row.prompt_segments)) if row.prompt_segments else (),
    )


def key_history_of(row: Consent) -> tuple[JsonObject, ...]:
    """The consent row's keys in order (empty where nobody was asked)."""
    return tuple(json.loads(row.key_history)) if row.key_history else ()


def early_digits(history: Sequence[JsonObject]) -> tuple[str, ...]:
    """The keys pressed before the disclosure began: kept, but never an answer."""
    return tuple(str(key["digit"]) for key in history if key.get("before_disclosure"))


def recording_view(row: Recording, caller: str | None) -> RecordingView:
    return RecordingView(
        id=row.id,
        call_id=row.call_id,
        caller=caller,
        kind=row.kind,
        status=row.status,
        format=row.format,
        duration_s=row.duration_s,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        legal_basis=row.legal_basis,
        retention_class=row.retention_class,
        retain_until=row.retain_until,
        location=row.location,
        started_at=row.started_at,
        layout=row.layout,
    )


def _check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return limit


async def call_views(session: AsyncSession, calls: Sequence[Call]) -> list[CallView]:
    """The calls, in the order given, each with its consent and recordings (three queries
    for the page, not three a call)."""
    ids = [call.id for call in calls]
    if not ids:
        return []
    consents = {
        row.call_id: row
        for row in (await session.scalars(select(Consent).where(Consent.call_id.in_(ids)))).all()
    }
    recordings: dict[str, list[Recording]] = {}
    recording_rows = await session.scalars(
        select(Recording)
        .where(Recording.call_id.in_(ids))
        .order_by(Recording.started_at, Recording.id)
    )
    for recording in recording_rows.all():
        recordings.setdefault(recording.call_id, []).append(recording)
    transfers = await transfers_of(session, ids)
    return [call_view(call, consents.get(call.id), recordings.get(call.id, ()),
                      transfers.get(call.id, ()))
            for call in calls]


def call_view(
    call: Call,
    consent: Consent | None,
    recordings: Sequence[Recording],
    transfers: Sequence[TransferView],
) -> CallView:
    """One call as every listing shows it (recordings in the order they started,
    transfers in the order they were asked for)."""
    return CallView(
        id=call.id,
        reference=call.reference,
        campaign=call.campaign,
        linkedid=call.linkedid,
        direction=call.direction,
        caller=call.caller,
        did=call.did,
        extension=call.extension,
        language=call.language,
        legal_basis=call.legal_basis,
        retention_class=call.retention_class,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        disposition=call.disposition,
        consent=None if consent is None else consent_view(consent),
        recordings=tuple(recording_view(row, call.caller) for row in recordings),
        transfers=tuple(transfers),
    )


async def list_recordings(
    session: AsyncSession,
    *,
    number: str | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[RecordingView]:
    """Newest first; recordings without a call row are listed too (caller None)."""
    query = select(Recording, Call.caller).outerjoin(Call, Call.id == Recording.call_id)
    if number is not None:
        query = query.where(_number_matches(Call.caller, number))
    if since is not None:
        query = query.where(Recording.started_at >= since)
    query = query.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(
        _check_limit(limit)
    )
    rows = (await session.execute(query)).all()
    return [recording_view(recording, caller) for recording, caller in rows]


async def list_consents(
    session: AsyncSession,
    *,
    number: str | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[ConsentView]:
    query = select(Consent)
    if number is not None:
        query = query.where(_number_matches(Consent.caller, number))
    if since is not None:
        query = query.where(Consent.decided_at >= since)
    query = query.order_by(Consent.decided_at.desc(), Consent.id.desc()).limit(_check_limit(limit))
    return [consent_view(row) for row in (await session.scalars(query)).all()]


class ReferenceNotFound(LookupError):
    """No call has this reference, or the call keeps no number to act on."""


async def caller_of_reference(session: AsyncSession, reference: str) -> str:
    """The caller's number of the call with this reference (checked, any spacing), for
    a request the caller made quoting it; raises ``InvalidReference`` for a mistyped one
    and :class:`ReferenceNotFound` when no call has it or its number is gone."""
    digits = parse_reference(reference)
    row = (await session.execute(
        select(Call.caller, Call.redaction).where(Call.reference == digits)
    )).first()
    if row is None:
        raise ReferenceNotFound(f"reference {digits}: no call has this reference")
    if row.caller is None:
        why = f"its number was {row.redaction}" if row.redaction else "the caller was anonymous"
        raise ReferenceNotFound(f"reference {digits}: the call has no caller number ({why})")
    return str(row.caller)
