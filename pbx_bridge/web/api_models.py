"""The API's documents, as the OpenAPI schema describes them: the same fields as the
CLI's ``--json`` (``CallView.to_json``), so scripts move between the two unchanged."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ConsentOut(BaseModel):
    decision: str
    digit: str | None
    prompt_version: str | None
    prompt_sha256: str | None
    at: str | None
    language: str
    evidence_recording_id: str | None
    prompt_name: str | None
    times_played: int
    disclosure_started_at: str | None
    answer_to_disclosure_s: float | None
    early_keys: list[str]
    key_history: list[dict[str, Any]]
    prompt_segments: list[dict[str, Any]]


class RecordingOut(BaseModel):
    id: str
    kind: str
    format: str
    layout: str
    duration_s: float | None
    sha256: str | None
    retain_until: str | None
    location: str | None
    status: str
    legal_basis: str
    size_bytes: int | None
    retention_class: str
    started_at: str | None


class HandledByOut(BaseModel):
    """An extension that talked with the caller, from when until when (null: still)."""

    extension: str
    from_: str | None = Field(alias="from")
    until: str | None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class TransferOut(BaseModel):
    """A transfer of the call, tried or made (``call_transfers``)."""

    mode: str
    from_: str = Field(alias="from")
    to: str
    requested_by: str
    requested_at: str | None
    answered_at: str | None
    ended_at: str | None
    outcome: str
    recording: str | None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class CallOut(BaseModel):
    id: str
    reference: str | None
    linkedid: str
    direction: str
    caller: str | None
    did: str
    extension: str | None
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    disposition: str | None
    language: str
    legal_basis: str
    retention_class: str
    campaign: str | None
    consent: ConsentOut | None
    recordings: list[RecordingOut]
    handled_by: list[HandledByOut] = []
    transfers: list[TransferOut] = []


class ConsentListedOut(ConsentOut):
    """One consent answer in ``GET /api/v1/consents`` (``consents list --json``'s fields)."""

    id: str
    call_id: str
    caller: str | None


class ChainProblemOut(BaseModel):
    seq: int
    kind: str
    message: str


class ChainStateOut(BaseModel):
    """The newest verification of the chain (``ok`` null: never verified from the
    console or the API)."""

    ok: bool | None
    checked: int
    head_seq: int
    head_hash: str
    problem: ChainProblemOut | None
    verified_at: str | None
    verified_by: str | None
    entry_seq: int | None


class Health(BaseModel):
    status: str
    database: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for errors answered as problem JSON."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in statuses
    }
