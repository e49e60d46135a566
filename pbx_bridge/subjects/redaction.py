"""Removing (erasure) or masking (anonymisation) the personal fields of a subject's rows.

The number is the personal field of a call or consent row. What stays is what proves
what happened without saying to whom: times, durations, dispositions, the DID and
extension (the controller's own numbers), the hangup cause, the consent decision and
the prompt version heard. ``caller_key`` stays so the subject can still be answered
truthfully ("we held 3 calls; erased on ..."); it is a keyed hash that only the
controller's secret links back to a number. A call whose recording is kept (legal hold,
legal obligation) keeps its number too: the kept recording must stay attributable.

All rows change in one transaction with their audit entries, so a run either redacted
a row and can prove it, or did not touch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest
from pbx_bridge.privacy import mask_number
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.index import InvalidNumber, SubjectIndex
from storage.audit_trail import AuditEvent, record_events

_CHUNK = 500


class Redaction(StrEnum):
    ERASED = "erased"
    ANONYMISED = "anonymised"


def _covers(existing: str | None, wanted: Redaction) -> bool:
    """An erased row is already beyond anonymisation; an anonymised one can still be erased."""
    return existing == Redaction.ERASED or existing == wanted


def anonymised_number(index: SubjectIndex, raw: str | None) -> str | None:
    """The operator's masked form, nationally for the default region (``0532***4567``).

    A value that is no public number (an extension, "anonymous") is masked as it is; a
    value already masked stays as it is, so anonymising twice changes nothing.
    """
    if raw is None or not raw.strip():
        return raw
    if "***" in raw:
        return raw
    try:
        return index.masked(index.normalise(raw))
    except InvalidNumber:
        return mask_number(raw.strip())


def _redacted_value(value: str | None, wanted: Redaction, index: SubjectIndex) -> str | None:
    return None if wanted is Redaction.ERASED else anonymised_number(index, value)


@dataclass
class RedactionReport:
    redaction: Redaction
    calls_redacted: list[str] = field(default_factory=list)
    calls_already: list[str] = field(default_factory=list)
    calls_kept: list[dict[str, str]] = field(default_factory=list)
    calls_live: list[str] = field(default_factory=list)
    consents_redacted: list[str] = field(default_factory=list)
    consents_already: list[str] = field(default_factory=list)
    request_numbers_cleared: int = 0

    @property
    def complete(self) -> bool:
        return not self.calls_live

    @property
    def did_something(self) -> bool:
        return bool(
            self.calls_redacted or self.consents_redacted or self.request_numbers_cleared
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "redaction": self.redaction.value,
            "calls": {
                "redacted": self.calls_redacted,
                "already_redacted": self.calls_already,
                "kept": self.calls_kept,
                "live": self.calls_live,
            },
            "consents": {
                "redacted": self.consents_redacted,
                "already_redacted": self.consents_already,
            },
            "request_numbers_cleared": self.request_numbers_cleared,
        }


async def redact_subject(
    env: RequestEnv,
    request: DataSubjectRequest,
    wanted: Redaction,
    *,
    keep_calls: Mapping[str, str],
) -> RedactionReport:
    """Redact every call and consent row of the request's subject, except ``keep_calls``.

    ``keep_calls`` maps a call id to why its row keeps the number. A live call (not
    ended) is left for a later run: the flow may still write its consent row.
    """
    index = env.index
    report = RedactionReport(wanted)
    events: list[AuditEvent] = []
    now = env.now()
    async with env.sessions() as session:
        calls = list(
            (
                await session.scalars(
                    select(Call)
                    .where(Call.caller_key == request.subject_key)
                    .order_by(Call.started_at, Call.id)
                )
            ).all()
        )
        by_call = {call.id: call for call in calls}
        consents = await _consents_of(session, request.subject_key, list(by_call))
        consent_of = {consent.call_id: consent for consent in consents}
        for call in calls:
            if call.id in keep_calls:
                report.calls_kept.append({"call_id": call.id, "why": keep_calls[call.id]})
                continue
            if call.ended_at is None:
                report.calls_live.append(call.id)
                continue
            consent = consent_of.get(call.id)
            consent_changed = consent is not None and _redact_consent(
                consent, wanted, index, report
            )
            if _covers(call.redaction, wanted):
                report.calls_already.append(call.id)
                if not consent_changed:
                    continue
            else:
                call.caller = _redacted_value(call.caller, wanted, index)
                call.redaction = wanted.value
                call.redacted_at = now
                report.calls_redacted.append(call.id)
            events.append(
                AuditEvent(
                    actor=env.actor,
                    action="call.redacted",
                    target=f"call:{call.id}",
                    details={
                        "redaction": wanted.value,
                        "request": request.reference,
                        "call_row": call.id in report.calls_redacted,
                        "consent_row": consent_changed,
                    },
                )
            )
        # Consents whose call row is not the subject's (older rows keyed only on the consent).
        for consent in consents:
            if consent.call_id in by_call:
                continue
            if _redact_consent(consent, wanted, index, report):
                events.append(
                    AuditEvent(
                        actor=env.actor,
                        action="consent.redacted",
                        target=f"consent:{consent.id}",
                        details={"redaction": wanted.value, "request": request.reference},
                    )
                )
        report.request_numbers_cleared = await _clear_request_numbers(
            session, request.subject_key
        )
        # Last before the commit: appending holds the audit chain's head until then.
        await record_events(session, events)
        await session.commit()
    return report


def _redact_consent(
    consent: Consent,
    wanted: Redaction,
    index: SubjectIndex,
    report: RedactionReport,
) -> bool:
    """Redact one consent row in place; True if it changed."""
    if consent.caller is None or (
        wanted is Redaction.ANONYMISED
        and anonymised_number(index, consent.caller) == consent.caller
    ):
        report.consents_already.append(consent.id)
        return False
    consent.caller = _redacted_value(consent.caller, wanted, index)
    report.consents_redacted.append(consent.id)
    return True


async def _consents_of(
    session: AsyncSession, subject_key: str, call_ids: list[str]
) -> list[Consent]:
    found: dict[str, Consent] = {}
    rows = await session.scalars(select(Consent).where(Consent.caller_key == subject_key))
    found.update((row.id, row) for row in rows.all())
    for start in range(0, len(call_ids), _CHUNK):
        chunk = call_ids[start : start + _CHUNK]
        rows = await session.scalars(
            select(Consent).where(Consent.call_id.in_(chunk))
        )
        found.update((row.id, row) for row in rows.all())
    return sorted(found.values(), key=lambda c: (c.decided_at, c.id))


async def _clear_request_numbers(session: AsyncSession, subject_key: str) -> int:
    """Requests keep the masked copy only; the subject key still finds them."""
    cleared = await session.scalars(
        update(DataSubjectRequest)
        .where(
            DataSubjectRequest.subject_key == subject_key,
            DataSubjectRequest.number.is_not(None),
        )
        .values(number=None)
        .returning(DataSubjectRequest.id)
    )
    return len(cleared.all())
