"""Routes, extensions, retention classes, calls and consents: the upper layer's rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models import Base, UTCDateTime, new_id, utcnow


class RetentionClassRow(Base):
    __tablename__ = "retention_classes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    days: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Extension(Base):
    __tablename__ = "extensions"

    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    recording: Mapped[str] = mapped_column(String(16))  # RecordingMode
    retention_class: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The policy per direction and scope (flow/policy.py cell_mode), each a RecordingMode;
    # NULL: ``recording`` applies (migration 0019).
    inbound_internal: Mapped[str | None] = mapped_column(String(16), nullable=True)
    inbound_external: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outbound_internal: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outbound_external: Mapped[str | None] = mapped_column(String(16), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class RingGroup(Base):
    """Extensions rung for one route target (``group:NAME``), at once or in turn, each for
    its own seconds; several routes may share one (migration 0016)."""

    __tablename__ = "ring_groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(8))  # RingStrategy: all | order
    # The members in order, each with the seconds it rings: "100:15,101:20".
    members: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Route(Base):
    __tablename__ = "routes"

    did: Mapped[str] = mapped_column(String(64), primary_key=True)
    # An extension ("101") or a ring group ("group:sales").
    target: Mapped[str] = mapped_column(String(64))
    announcement: Mapped[str] = mapped_column(String(16))  # Announcement
    language: Mapped[str] = mapped_column(String(8))  # Language
    legal_basis: Mapped[str] = mapped_column(String(32))  # LegalBasis
    timeout_means: Mapped[str] = mapped_column(String(16))  # TimeoutRule
    prompt_timeout_s: Mapped[int] = mapped_column(Integer)
    retention_class: Mapped[str] = mapped_column(String(64))
    # Recordings of this route may only be kept in this country (checked against the
    # storage targets when set and at every start).
    require_jurisdiction: Mapped[str | None] = mapped_column(String(2), nullable=True)
    # Pressing 8 at the disclosure withdraws consent (opens a withdrawal request).
    offer_withdrawal: Mapped[bool] = mapped_column(Boolean, default=False)
    # Language choice (migration 0010): the languages offered ("tr,en"; NULL: only
    # ``language``), the key for each ("1,3"), or the caller's country decides.
    languages: Mapped[str | None] = mapped_column(String(128), nullable=True)
    language_keys: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language_by_country: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class OutboundRoute(Base):
    """What the callee of an agent's call out hears, by the dialled number's prefix (the
    longest prefix wins; a number no prefix matches takes ``[default_outbound_route]``).
    Migration 0020."""

    __tablename__ = "outbound_routes"

    prefix: Mapped[str] = mapped_column(String(32), primary_key=True)
    announcement: Mapped[str] = mapped_column(String(16))  # Announcement
    language: Mapped[str] = mapped_column(String(8))  # Language
    legal_basis: Mapped[str] = mapped_column(String(32))  # LegalBasis
    timeout_means: Mapped[str] = mapped_column(String(16))  # TimeoutRule
    prompt_timeout_s: Mapped[int] = mapped_column(Integer)
    retention_class: Mapped[str] = mapped_column(String(64))
    # How the callee is dialled ({number}); NULL: [call] outbound_dial_template.
    dial_template: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Call(Base):
    __tablename__ = "calls"
    # The call search (calls/search.py) walks one of these newest first, by keyset: each
    # filter it can drive by ends in (started_at, id). Migration 0007.
    __table_args__ = (
        Index("ix_calls_started_at_id", "started_at", "id"),
        Index("ux_calls_reference", "reference", unique=True),
        Index("ix_calls_caller_key_started_at", "caller_key", "started_at", "id"),
        Index("ix_calls_caller_started_at", "caller", "started_at", "id"),
        Index("ix_calls_did_started_at", "did", "started_at", "id"),
        Index("ix_calls_extension_started_at", "extension", "started_at", "id"),
        # A disposition within extensions (a supervisor's busy calls). Migration 0017.
        Index("ix_calls_extension_disposition_started_at", "extension", "disposition",
              "started_at", "id"),
        Index("ix_calls_disposition_started_at", "disposition", "started_at", "id"),
        Index("ix_calls_direction_started_at", "direction", "started_at", "id"),
        Index("ix_calls_campaign_started_at", "campaign", "started_at", "id"),  # 0021
        # Live calls (no disposition yet) are few; PostgreSQL does not read "IS NULL" as
        # an equality that keeps the next columns in order, so they get their own index.
        Index("ix_calls_live_started_at", "started_at", "id",
              sqlite_where=text("disposition IS NULL"),
              postgresql_where=text("disposition IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Eight digits and a check digit (calls/reference.py), spoken in the notice; the
    # caller quotes it in a request. NULL for calls made before migration 0010.
    reference: Mapped[str | None] = mapped_column(String(9), nullable=True)
    linkedid: Mapped[str] = mapped_column(String(64), index=True)
    # The caller's channel id in Asterisk; a resync after reconnect finds the call by it.
    channel_id: Mapped[str] = mapped_column(String(128), unique=True)
    direction: Mapped[str] = mapped_column(String(16))
    caller: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Keyed hash of the caller's E.164 number: finds the subject's calls, also after
    # erasure or anonymisation removed or masked ``caller``.
    caller_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # "erased" or "anonymised" once a data-subject request removed the personal fields.
    redaction: Mapped[str | None] = mapped_column(String(16), nullable=True)
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    did: Mapped[str] = mapped_column(String(64))
    extension: Mapped[str | None] = mapped_column(String(64), nullable=True)
    announcement: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(String(32))
    retention_class: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    # The route as the call started with it (JSON, flow/call_state.route_snapshot): a call
    # adopted after a restart keeps it. NULL on calls from before migration 0011.
    route_snapshot: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The campaign the call belongs to (click-to-call, the route's, or the dialplan's
    # PBX_BRIDGE_CAMPAIGN); None: no campaign. Migration 0021.
    campaign: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    # answered, abandoned, no-answer, busy, failed; NULL while the call is live.
    disposition: Mapped[str | None] = mapped_column(String(16), nullable=True)
    hangup_cause: Mapped[str | None] = mapped_column(Text, nullable=True)

    consent: Mapped[Consent | None] = relationship(back_populates="call", uselist=False)


class Consent(Base):
    __tablename__ = "consents"
    # How many calls have this answer, cheaply (the call search's rare-answer check).
    __table_args__ = (Index("ix_consents_decision_call_id", "decision", "call_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), unique=True)
    caller: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    caller_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # granted, declined, timeout, not-asked, withdrawn, not-objected (policy.ConsentOutcome)
    decision: Mapped[str] = mapped_column(String(16))
    digit: Mapped[str | None] = mapped_column(String(1), nullable=True)
    language: Mapped[str] = mapped_column(String(8))
    prompt_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_text_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    times_played: Mapped[int] = mapped_column(Integer, default=0)
    evidence_recording_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    prompt_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The disclosure's first audio (PlaybackStarted) and its delay after the answer: under
    # load it grows, and keys pressed before it are not an answer (policy.key_answers).
    disclosure_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    answer_to_disclosure_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # JSON list of the dialogue's keys in order: {"digit", "at", "before_disclosure"}.
    key_history: Mapped[str | None] = mapped_column(Text, nullable=True)
    # JSON list of every prompt segment the caller heard, in order: {"name", "version",
    # "audio_sha256", "text_sha256"} (the disclosure is composed per route; 0011).
    prompt_segments: Mapped[str | None] = mapped_column(Text, nullable=True)

    call: Mapped[Call] = relationship(back_populates="consent")


class DataSubjectRequest(Base):
    """One request under KVKK art. 11 / GDPR arts. 15-22, from receipt to answer."""

    __tablename__ = "dsar_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Short, human-quotable reference (e.g. DSAR-2026-0001) for letters and e-mails.
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    subject_key: Mapped[str] = mapped_column(String(64), index=True)
    # E.164; cleared (masked copy kept) once an erasure or anonymisation is done.
    number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    number_masked: Mapped[str] = mapped_column(String(32))
    # access, export, erasure, anonymise, withdraw, object
    type: Mapped[str] = mapped_column(String(16))
    # phone, email, web, letter, keypress
    channel: Mapped[str] = mapped_column(String(16))
    # The subject's own reference for the request (their letter's, their e-mail's), if any.
    their_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # open, in-progress, done, rejected
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    opened_by: Mapped[str] = mapped_column(String(128))
    handled_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # JSON: exactly what the action did (recordings deleted, kept and why, rows redacted).
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    export_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    export_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DoNotRecord(Base):
    """Numbers whose calls are connected without recording (consent withdrawn, objection)."""

    __tablename__ = "do_not_record"

    subject_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # withdraw or object
    reason: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RecordingPause(Base):
    """A PCI pause of a conversation recording: where in the file, and who.

    The span is silence in the stored file (the recording was muted, not paused), so
    ``start_s``/``end_s`` are offsets into the file as it plays; a listener or an
    auditor sees why that stretch is silent and who asked for it (migration 0013).
    """

    __tablename__ = "recording_pauses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: still paused
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # "agent:100", "user:NAME", "token:ID"; resumed also "auto" (the time limit) or
    # "recording-end" (the recording or the call ended while paused).
    paused_by: Mapped[str] = mapped_column(String(128))
    resumed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class CallTransfer(Base):
    """One transfer of a call by its agent (or by API), tried or made: from which
    extension to which, when, how it went, and what became of the recording.

    The completed ones are the call's history of who handled it (the first extension
    from the answer, each target from its ``answered_at``); the failed ones show what
    the caller lived through (held, then back with the first agent). Migration 0014.
    """

    __tablename__ = "call_transfers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    mode: Mapped[str] = mapped_column(String(16))  # blind, attended
    from_extension: Mapped[str] = mapped_column(String(64))
    # As typed: a refused attempt may hold digits that are no extension.
    to_extension: Mapped[str] = mapped_column(String(64))
    # "agent:100" (its keypad), "user:NAME" or "token:ID" (the API).
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the target answered (None: it never did), and when the attempt ended.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # completed, busy, no-answer, unreachable, cancelled, refused, caller-left
    outcome: Mapped[str] = mapped_column(String(16))
    # What the target's policy did to the recording: continued, stopped, started, none.
    recording: Mapped[str | None] = mapped_column(String(16), nullable=True)


class CallCommand(Base):
    """A request from the console, the API or the CLI to the service that owns a call
    (pause its recording, start a click-to-call), kept until answered (migration 0018).

    The web process cannot reach Asterisk's calls: only the ``pbx-bridge run`` holding
    the call can act on it, and with several Asterisk nodes on one database the asker
    does not know which. So the request is a row; each service takes the ones for its
    own calls with a compare-and-set on ``taken_at`` (``pbx_bridge/commands/queue.py``),
    so two nodes never both act, and writes the outcome back for the asker to read.
    """

    __tablename__ = "call_commands"
    # The services' poll reads the few commands nobody has taken yet.
    __table_args__ = (
        Index("ix_call_commands_pending", "expires_at",
              sqlite_where=text("taken_at IS NULL"),
              postgresql_where=text("taken_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # The call it is about; NULL for a command that makes a call (click-to-call).
    call_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # The service node that must take it (NULL: whichever owns the call, or any).
    node: Mapped[str | None] = mapped_column(String(128), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))  # pause, resume, originate
    arguments: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    requested_by: Mapped[str] = mapped_column(String(128))  # the audit actor
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Nobody took it by then: no service owns the call (stopped, or the call is gone).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    taken_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # done, refused, failed, expired; NULL until finished.
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CampaignRow(Base):
    """A campaign: calls tagged with it are recorded per its mode (combined with the
    extension's: either can forbid) and kept per its retention class (migration 0021)."""

    __tablename__ = "campaigns"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    recording: Mapped[str] = mapped_column(String(16))  # RecordingMode
    # None: the class the call would have without the campaign (extension, route).
    retention_class: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
