"""The call's life as rows: opened when the caller arrives, closed when the last leg leaves.

Each write is its own short transaction, committed before the flow moves on, so a crash
leaves the database saying exactly how far the call got. Every call takes these writes,
so each is a single Core statement where it can be (no unit of work, no identity map):
an INSERT that decides on its conflict clause, an UPDATE that says with RETURNING
whether it won (tests/test_journal_statements.py counts them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Insert

from pbx_bridge.calls.history import JsonObject, iso
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.reference import new_reference
from pbx_bridge.subjects.index import SubjectIndex
from storage.audit_trail import record_event
from storage.inserts import insert_if_absent
from storage.models import Recording, RecordingStatus, new_id, utcnow

DELETION_STATES = (RecordingStatus.DELETING, RecordingStatus.DELETED)
_CALLS = cast(Table, Call.__table__)
_CONSENTS = cast(Table, Consent.__table__)

# Built once: on the way every call takes, building a statement (and the ORM's handling
# of one) cost more CPU than running it (bench/README.md, "Database work per call").
_ANSWER = (
    update(_CALLS)
    .where(_CALLS.c.id == bindparam("call"), _CALLS.c.answered_at.is_(None))
    .values(answered_at=bindparam("at", type_=_CALLS.c.answered_at.type))
    .returning(_CALLS.c.id)
)
# A ring group's call: the member who answered is the call's extension, and its own
# retention class (if it has one) the call's.
_ANSWER_BY = (
    update(_CALLS)
    .where(_CALLS.c.id == bindparam("call"), _CALLS.c.answered_at.is_(None))
    .values(
        answered_at=bindparam("at", type_=_CALLS.c.answered_at.type),
        extension=bindparam("extension", type_=_CALLS.c.extension.type),
        retention_class=bindparam("class", type_=_CALLS.c.retention_class.type),
    )
    .returning(_CALLS.c.id)
)
_CLOSE = (
    update(_CALLS)
    .where(_CALLS.c.id == bindparam("call"), _CALLS.c.ended_at.is_(None))
    .values(
        ended_at=bindparam("at", type_=_CALLS.c.ended_at.type),
        disposition=bindparam("how", type_=_CALLS.c.disposition.type),
        hangup_cause=bindparam("cause", type_=_CALLS.c.hangup_cause.type),
        # The language heard, if the flow knew it later than the row (chosen by key).
        language=func.coalesce(bindparam("language", type_=_CALLS.c.language.type),
                               _CALLS.c.language),
    )
    .returning(_CALLS.c.ended_at)
)
_SET_LANGUAGE = (
    update(_CALLS)
    .where(_CALLS.c.id == bindparam("call"))
    .values(language=bindparam("language", type_=_CALLS.c.language.type))
)
_BY_CHANNEL = select(_CALLS.c.id, _CALLS.c.reference).where(
    _CALLS.c.channel_id == bindparam("channel")
)
# A fresh reference collides with a stored one about once in 10**8 / calls-stored draws;
# so many in a row means something else is wrong.
_REFERENCE_DRAWS = 8
# INSERT ... ON CONFLICT DO NOTHING RETURNING id, per dialect: (table, key) -> statement.
_FIRST_INSERTS: dict[tuple[str, str], Insert] = {}


def _first_insert(session: AsyncSession, table: Table, key: str) -> Insert:
    """The insert of a row that exists once per ``key``, built once per dialect."""
    dialect = session.get_bind().dialect.name
    statement = _FIRST_INSERTS.get((dialect, table.name))
    if statement is None:
        statement = insert_if_absent(session, table, [key]).returning(table.c.id)
        _FIRST_INSERTS[(dialect, table.name)] = statement
    return statement


def _call_insert(session: AsyncSession) -> Insert:
    """The call's INSERT, doing nothing on any unique key (its channel, its reference),
    built once per dialect."""
    dialect = session.get_bind().dialect.name
    statement = _FIRST_INSERTS.get((dialect, "calls:any"))
    if statement is None:
        statement = insert_if_absent(session, _CALLS).returning(_CALLS.c.id)
        _FIRST_INSERTS[(dialect, "calls:any")] = statement
    return statement


class ReferencesExhausted(RuntimeError):
    """Every drawn reference was taken: never expected below billions of calls."""


@dataclass(frozen=True)
class OpenedCall:
    """The call's row: its id and the reference the caller hears (None: an old call)."""

    id: str
    reference: str | None


class CallNotFound(LookupError):
    """A journal write named a call id that has no row."""


@dataclass(frozen=True)
class CallerKey:
    """A key the caller pressed during the consent dialogue (time: Asterisk's event)."""

    digit: str
    at: datetime
    # Arrived before the disclosure's first audio: kept as history, never an answer.
    early: bool = False

    def to_json(self) -> JsonObject:
        return {"digit": self.digit, "at": iso(self.at), "before_disclosure": self.early}


@dataclass(frozen=True)
class HeardSegment:
    """One prompt of a composed disclosure as the caller heard it (its proof)."""

    name: str
    version: str
    audio_sha256: str
    text_sha256: str

    def to_json(self) -> JsonObject:
        return {"name": self.name, "version": self.version,
                "audio_sha256": self.audio_sha256, "text_sha256": self.text_sha256}


@dataclass(frozen=True)
class ConsentProof:
    """What the caller heard and did: the proof kept for an audit."""

    decision: str
    digit: str | None
    language: str
    prompt_name: str | None
    prompt_version: str | None
    prompt_sha256: str | None
    prompt_text_sha256: str | None
    times_played: int
    evidence_recording_id: str | None
    prompt_started_at: datetime | None
    decided_at: datetime
    # The disclosure's first audio, and how long after answering the caller it came.
    disclosure_started_at: datetime | None = None
    answer_to_disclosure_s: float | None = None
    # Every key of the dialogue in order, early ones included (None: nobody was asked).
    key_history: tuple[CallerKey, ...] | None = None
    # Every segment of the composed disclosure (or notice) heard, in order.
    prompt_segments: tuple[HeardSegment, ...] | None = None


def _early_keys(proof: ConsentProof) -> JsonObject:
    """Keys pressed before the disclosure began, for the audit entry (only if any)."""
    early = [key.digit for key in proof.key_history or () if key.early]
    return {"early_keys": early} if early else {}


@dataclass(frozen=True)
class OpenCall:
    """A call still live in the database (no end time): what a restart must reconcile."""

    id: str
    channel_id: str
    direction: str
    did: str
    answered: bool
    consent_decision: str | None
    # What the call started with, for its adoption (``call_state.route_started_with``).
    extension: str | None = None
    announcement: str = ""
    language: str = ""
    legal_basis: str = ""
    retention_class: str = ""
    route_snapshot: str | None = None
    reference: str | None = None


class CallJournal:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], subjects: SubjectIndex
    ) -> None:
        self._sessions = sessions
        # Every call and consent row carries its caller's subject key from the start, so
        # an access or erasure request finds it without scanning numbers.
        self._subjects = subjects

    async def open(self, **facts: Any) -> str:
        """:meth:`open_call` (the same keywords), for who needs only the id."""
        return (await self.open_call(**facts)).id

    async def open_call(
        self,
        *,
        linkedid: str,
        channel_id: str,
        direction: str,
        caller: str | None,
        did: str,
        extension: str,
        announcement: str,
        legal_basis: str,
        retention_class: str,
        language: str,
        route_snapshot: str | None = None,
        campaign: str | None = None,
    ) -> OpenedCall:
        """Record the caller's arrival with a new reference; a call already known by its
        channel is reused, with the reference it was given.

        Reuse matters after a restart: the same channel re-enters the flow and must not
        become a second call.
        """
        values = {
            "id": new_id(),
            "linkedid": linkedid,
            "channel_id": channel_id,
            "direction": direction,
            "caller": caller,
            "caller_key": self._subjects.key_of(caller),
            "did": did,
            "extension": extension,
            "announcement": announcement,
            "legal_basis": legal_basis,
            "retention_class": retention_class,
            "language": language,
            "route_snapshot": route_snapshot,
            "campaign": campaign,
            "started_at": utcnow(),
        }
        async with self._sessions() as session, session.begin():
            for _ in range(_REFERENCE_DRAWS):
                reference = new_reference()
                # One INSERT on the way every call takes; the unique keys say whether it
                # is new, and only a reused channel (or a reference drawn twice) costs
                # another statement.
                opened = await session.scalar(
                    _call_insert(session), {**values, "reference": reference}
                )
                if opened is not None:
                    return OpenedCall(str(opened), reference)
                existing = (await session.execute(_BY_CHANNEL, {"channel": channel_id})).first()
                if existing is not None:
                    return OpenedCall(str(existing.id), existing.reference)
        raise ReferencesExhausted(
            f"no free call reference in {_REFERENCE_DRAWS} draws; check ux_calls_reference"
        )

    async def answered(
        self, call_id: str, at: datetime | None = None, *,
        by: tuple[str, str] | None = None,
    ) -> None:
        """The first answer counts; one UPDATE on the way every call takes. ``by``: the
        ring group member (extension, retention class) who answered, written with it."""
        async with self._sessions() as session, session.begin():
            when = at or utcnow()
            won = await session.scalar(
                _ANSWER, {"call": call_id, "at": when}) if by is None else await session.scalar(
                _ANSWER_BY, {"call": call_id, "at": when, "extension": by[0], "class": by[1]})
            if won is None:
                await self._get(session, call_id)  # answered already, or no such call

    async def close(
        self,
        call_id: str,
        disposition: str,
        *,
        cause: str | None = None,
        ended_at: datetime | None = None,
        language: str | None = None,
    ) -> datetime:
        """Mark the call ended (now, or at ``ended_at`` when written late); closing twice
        keeps the first end (idempotent on resync). ``language``: the one the caller
        heard, when the row does not say it yet (chosen by key, then no consent row
        was saved: the caller left during the disclosure)."""
        if ended_at is not None and ended_at.tzinfo is None:
            raise ValueError("ended_at must be timezone-aware")
        async with self._sessions() as session, session.begin():
            ended: datetime | None = await session.scalar(
                _CLOSE,
                {"call": call_id, "at": ended_at or utcnow(), "how": disposition,
                 "cause": cause, "language": language},
            )
            if ended is None:  # closed already (keep its end), or no such call
                ended = (await self._get(session, call_id)).ended_at
            assert ended is not None
            return ended

    async def save_consent(
        self,
        call_id: str,
        caller: str | None,
        proof: ConsentProof,
        *,
        call_language: str | None = None,
    ) -> None:
        """The proof, with its audit entry. ``call_language``: the call's row learns the
        language the caller chose by key (heard since), in the same transaction; only
        such calls pay that UPDATE."""
        row = {
            "id": new_id(),
            "call_id": call_id,
            "caller": caller,
            "caller_key": self._subjects.key_of(caller),
            "decision": proof.decision,
            "digit": proof.digit,
            "language": proof.language,
            "prompt_name": proof.prompt_name,
            "prompt_version": proof.prompt_version,
            "prompt_sha256": proof.prompt_sha256,
            "prompt_text_sha256": proof.prompt_text_sha256,
            "times_played": proof.times_played,
            "evidence_recording_id": proof.evidence_recording_id,
            "prompt_started_at": proof.prompt_started_at,
            "decided_at": proof.decided_at,
            "disclosure_started_at": proof.disclosure_started_at,
            "answer_to_disclosure_s": proof.answer_to_disclosure_s,
            "key_history": (
                None
                if proof.key_history is None
                else json.dumps([key.to_json() for key in proof.key_history])
            ),
            "prompt_segments": (
                None
                if proof.prompt_segments is None
                else json.dumps([segment.to_json() for segment in proof.prompt_segments])
            ),
        }
        async with self._sessions() as session, session.begin():
            if call_language is not None:
                await session.execute(_SET_LANGUAGE, {"call": call_id,
                                                      "language": call_language})
            # The first proof of a call stays (a resync may save it again): the call's
            # unique key decides in the INSERT itself, and only a new proof is audited.
            saved = await session.scalar(_first_insert(session, _CONSENTS, "call_id"), row)
            if saved is None:
                return
            # The proof and its audit entry commit together; never the number itself.
            await record_event(
                session,
                actor="caller" if proof.digit else "service",
                action="consent.recorded",
                target=f"call:{call_id}",
                details={
                    "decision": proof.decision,
                    "digit": proof.digit,
                    "language": proof.language,
                    "prompt": proof.prompt_name,
                    "prompt_version": proof.prompt_version,
                    "prompt_sha256": proof.prompt_sha256,
                    "times_played": proof.times_played,
                    "evidence_recording": proof.evidence_recording_id,
                    **_early_keys(proof),
                },
                at=proof.decided_at,
            )

    async def consent_decision(self, call_id: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Consent.decision).where(Consent.call_id == call_id)
            )

    async def open_calls(self) -> list[OpenCall]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(
                    Call.id,
                    Call.channel_id,
                    Call.direction,
                    Call.did,
                    Call.answered_at,
                    Consent.decision,
                    Call.extension,
                    Call.announcement,
                    Call.language,
                    Call.legal_basis,
                    Call.retention_class,
                    Call.route_snapshot,
                    Call.reference,
                )
                .outerjoin(Consent, Consent.call_id == Call.id)
                .where(Call.ended_at.is_(None))
            )
            return [
                OpenCall(
                    id=r.id,
                    channel_id=r.channel_id,
                    direction=r.direction,
                    did=r.did,
                    answered=r.answered_at is not None,
                    consent_decision=r.decision,
                    extension=r.extension,
                    announcement=r.announcement,
                    language=r.language,
                    legal_basis=r.legal_basis,
                    retention_class=r.retention_class,
                    route_snapshot=r.route_snapshot,
                    reference=r.reference,
                )
                for r in rows
            ]

    async def ended_without_retention(self) -> list[tuple[str, datetime]]:
        """Ended calls with recordings still waiting for their retain_until.

        The call's end is committed first and its recordings' retain_until right after
        (``RecordingPipeline.close_call``); a crash in between would leave those
        recordings waiting for ever, since nothing copies them before retain_until is
        known.
        """
        async with self._sessions() as session:
            rows = await session.execute(
                select(Call.id, Call.ended_at)
                .join(Recording, Recording.call_id == Call.id)
                .where(
                    Call.ended_at.is_not(None),
                    Recording.retain_until.is_(None),
                    Recording.status.not_in(
                        [s.value for s in (RecordingStatus.FAILED, *DELETION_STATES)]
                    ),
                )
                .distinct()
            )
            return [(call_id, ended_at) for call_id, ended_at in rows if ended_at is not None]

    @staticmethod
    async def _get(session: AsyncSession, call_id: str) -> Call:
        call = await session.get(Call, call_id)
        if call is None:
            raise CallNotFound(call_id)
        return call
