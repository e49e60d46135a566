"""Erasure, anonymisation, withdrawal of consent and objection: what each request does.

Each answer is idempotent: it looks at what is held now, does only what is still to be
done, and reports both (``deleted`` in this run, ``already_deleted`` before it), so a
second run does nothing new and says so. ``complete`` is False while anything is still
pending (a backend that was down, a recording the pipeline still owns, a live call):
the request stays in progress and running it again finishes the work.

- erasure (GDPR art. 17, KVKK art. 7): every recording and evidence clip deleted, the
  number removed from call, consent and request rows, reports and exports made for earlier
  requests deleted; tombstones (which hold no number) stay. Recordings on legal hold or
  kept under a legal obligation are not erased (art. 17(3)(b), (e)); the result names
  them and why.
- anonymise: the same deletions, numbers masked as operators print them, statistics kept.
- withdraw (art. 7(3)): consent-based recordings deleted, others listed with their basis;
  the subject goes on the do-not-record list.
- object (art. 21): the same for recordings kept under legitimate interest, and only
  after the DPO decided the objection is upheld.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.config import LegalBasis
from pbx_bridge.subjects.answer_removal import remove_answers
from pbx_bridge.subjects.do_not_record import Listing, ListReason, put_on_list
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.lookup import holdings_of
from pbx_bridge.subjects.recording_removal import KeepRule, RemovalReport, remove_recordings
from pbx_bridge.subjects.redaction import Redaction, RedactionReport, redact_subject
from pbx_bridge.subjects.register import RequestStateError
from storage.audit_trail import record_event
from storage.backends.base import Backend
from storage.models import Recording

log = logging.getLogger(__name__)

ERASURE_REASON = "erasure"
ANONYMISATION_REASON = "anonymisation"
WITHDRAWAL_REASON = "withdrawal"
OBJECTION_REASON = "objection"


class DecisionRequired(RequestStateError):
    """An objection is acted on only after the DPO's decision, which must be given."""


def _keep_legally_required(row: Recording) -> str | None:
    if row.legal_basis == LegalBasis.LEGAL_OBLIGATION:
        return (
            "recorded under a legal obligation (GDPR art. 17(3)(b)): kept until its "
            "retention ends"
        )
    return None


def _only_basis(basis: LegalBasis, request_kind: str) -> KeepRule:
    def keep(row: Recording) -> str | None:
        if row.legal_basis == basis:
            return None
        return (
            f"legal basis is {row.legal_basis}, not {basis.value}: "
            f"{request_kind} does not cover it"
        )

    return keep


def _base(request: DataSubjectRequest) -> dict[str, object]:
    return {
        "type": request.type,
        "reference": request.reference,
        "subject": request.number_masked,
    }


def _recordings_summary(removal: RemovalReport) -> str:
    parts = [f"{len(removal.deleted)} recording(s) deleted"]
    if removal.already_deleted:
        parts.append(f"{len(removal.already_deleted)} already deleted")
    if removal.kept:
        parts.append(f"{len(removal.kept)} kept")
    if removal.pending:
        parts.append(f"{len(removal.pending)} pending")
    return ", ".join(parts)


async def answer_erasure(
    env: RequestEnv,
    request: DataSubjectRequest,
    *,
    backends: Mapping[str, Backend] | None = None,
) -> dict[str, object]:
    return await _remove_and_redact(
        env, request, Redaction.ERASED, ERASURE_REASON, backends=backends
    )


async def answer_anonymise(
    env: RequestEnv,
    request: DataSubjectRequest,
    *,
    backends: Mapping[str, Backend] | None = None,
) -> dict[str, object]:
    return await _remove_and_redact(
        env, request, Redaction.ANONYMISED, ANONYMISATION_REASON, backends=backends
    )


async def _remove_and_redact(
    env: RequestEnv,
    request: DataSubjectRequest,
    redaction: Redaction,
    reason: str,
    *,
    backends: Mapping[str, Backend] | None,
) -> dict[str, object]:
    async with env.sessions() as session:
        held = await holdings_of(session, request.subject_key)
    removal = await remove_recordings(
        env,
        request,
        held.recordings,
        reason=reason,
        keep=_keep_legally_required,
        backends=backends,
    )
    keep_calls: dict[str, str] = {}
    for kept in removal.kept:
        keep_calls.setdefault(
            str(kept["call_id"]), f"its recording {kept['recording_id']} is kept: {kept['why']}"
        )
    answers = await remove_answers(env, request, held.requests)
    rows = await redact_subject(env, request, redaction, keep_calls=keep_calls)
    complete = removal.complete and rows.complete
    nothing_new = not removal.did_something and not rows.did_something and not answers
    summary = _summary(request, removal, rows, nothing_new, complete)
    log.info("%s", summary)
    return {
        **_base(request),
        "complete": complete,
        "nothing_new": nothing_new,
        "summary": summary,
        "recordings": removal.as_dict(),
        "rows": rows.as_dict(),
        "answers_deleted": answers,
    }


def _summary(
    request: DataSubjectRequest,
    removal: RemovalReport,
    rows: RedactionReport,
    nothing_new: bool,
    complete: bool,
) -> str:
    text = (
        f"{request.type} {request.reference}: {_recordings_summary(removal)}; "
        f"{len(rows.calls_redacted)} call row(s) and {len(rows.consents_redacted)} consent "
        f"row(s) {rows.redaction.value}"
    )
    if rows.calls_kept:
        text += f", {len(rows.calls_kept)} call row(s) kept with their recordings"
    if rows.calls_live:
        text += f", {len(rows.calls_live)} call(s) still live"
    if nothing_new:
        text += " (nothing new: all of it was done before)"
    if not complete:
        text += "; not finished: run the request again"
    return text


async def answer_withdraw(
    env: RequestEnv,
    request: DataSubjectRequest,
    *,
    backends: Mapping[str, Backend] | None = None,
) -> dict[str, object]:
    return await _remove_and_list(
        env,
        request,
        LegalBasis.CONSENT,
        WITHDRAWAL_REASON,
        ListReason.WITHDRAW,
        "a withdrawal of consent",
        backends=backends,
    )


async def answer_object(
    env: RequestEnv,
    request: DataSubjectRequest,
    *,
    decision: str | None = None,
    backends: Mapping[str, Backend] | None = None,
) -> dict[str, object]:
    """``decision``: the DPO's decision upholding the objection (who decided, what, when)."""
    if decision is None or not decision.strip():
        raise DecisionRequired(
            f"request {request.reference} is an objection: recordings kept under legitimate "
            "interest are deleted only after the DPO upheld it; give the decision "
            "(dsar run --dpo-decision TEXT), or reject the request if it was not upheld"
        )
    text = decision.strip()
    result = await _remove_and_list(
        env,
        request,
        LegalBasis.LEGITIMATE_INTEREST,
        OBJECTION_REASON,
        ListReason.OBJECT,
        "an objection",
        backends=backends,
    )
    if not result["nothing_new"]:
        # The decision is proven by its hash: the text may name people and stays in the
        # request's result, not in the append-only trail.
        async with env.sessions() as session:
            await record_event(
                session,
                actor=env.actor,
                action="dsar.dpo_decision",
                target=f"dsar:{request.id}",
                details={
                    "request": request.reference,
                    "decision_sha256": hashlib.sha256(text.encode()).hexdigest(),
                },
            )
            await session.commit()
    return {**result, "dpo_decision": text}


async def _remove_and_list(
    env: RequestEnv,
    request: DataSubjectRequest,
    basis: LegalBasis,
    reason: str,
    list_reason: ListReason,
    request_kind: str,
    *,
    backends: Mapping[str, Backend] | None,
) -> dict[str, object]:
    async with env.sessions() as session:
        held = await holdings_of(session, request.subject_key)
    removal = await remove_recordings(
        env,
        request,
        held.recordings,
        reason=reason,
        keep=_only_basis(basis, request_kind),
        backends=backends,
    )
    async with env.sessions() as session:
        listing = await put_on_list(
            session,
            request.subject_key,
            reason=list_reason,
            request_id=request.id,
            actor=env.actor,
            now=env.now(),
        )
        await session.commit()
    nothing_new = not removal.did_something and not listing.added_now
    summary = (
        f"{request.type} {request.reference}: {_recordings_summary(removal)}; "
        + _listing_summary(listing)
    )
    if nothing_new:
        summary += " (nothing new: all of it was done before)"
    if not removal.complete:
        summary += "; not finished: run the request again"
    log.info("%s", summary)
    return {
        **_base(request),
        "complete": removal.complete,
        "nothing_new": nothing_new,
        "summary": summary,
        "recordings": removal.as_dict(),
        "do_not_record": listing.as_dict(),
    }


def _listing_summary(listing: Listing) -> str:
    if listing.added_now:
        return "put on the do-not-record list"
    return f"already on the do-not-record list ({listing.reason})"
