"""``pbx-bridge dsar``: the register of data-subject requests (KVKK art. 11, GDPR arts. 15-22).

Numbers are masked (``0532***4567``) in every output unless ``--unmasked`` is given.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, TypeVar

import typer

from pbx_bridge.calls.history import ReferenceNotFound, caller_of_reference, iso
from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.calls.reference import InvalidReference, parse_reference
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, sessions_for, settings_of
from pbx_bridge.cli.dsar_approvals import approvals_command
from pbx_bridge.cli.errors import EXIT_RUNTIME, EXIT_USAGE, fail, reporting_errors
from pbx_bridge.cli.listing_options import (
    JsonOption,
    UnmaskedOption,
    record_unmasked,
    short_time,
)
from pbx_bridge.cli.progress import Reporter, progress_for
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings
from pbx_bridge.privacy import mask_number
from pbx_bridge.subjects.holdings_summary import HeldSummary
from pbx_bridge.subjects.index import (
    InvalidNumber,
    SubjectIndex,
    SubjectKeyError,
    subject_index_from_settings,
)
from pbx_bridge.subjects.lookup import SubjectHoldings, holdings_of
from pbx_bridge.subjects.register import (
    RequestChannel,
    RequestNotFound,
    RequestStateError,
    RequestStatus,
    RequestType,
    due_state,
    get_request,
    list_requests,
    open_request,
    reject,
)
from pbx_bridge.subjects.reindex import DEFAULT_BATCH, ReindexReport, reindex
from storage.models import utcnow

app = typer.Typer(help="Data-subject requests: open, list, show, run, reject (numbers masked).")
app.command("approvals")(approvals_command)

E = TypeVar("E", bound=StrEnum)

# Opened by the service itself when a caller presses the withdrawal key, never by hand.
CLI_CHANNELS = [c for c in RequestChannel if c is not RequestChannel.KEYPRESS]
# Free text (a note, a result) may carry a number someone typed.
_NUMBER_IN_TEXT = re.compile(r"\+?\d[\d ]{6,}\d")


def _choice(value: str, choices: list[E], option: str) -> E:
    text = value.strip().lower()
    for choice in choices:
        if choice.value == text:
            return choice
    allowed = ", ".join(c.value for c in choices)
    fail(f"{option} {value!r}: use one of {allowed}", EXIT_USAGE)


def _mask_text(text: str | None, unmasked: bool) -> str | None:
    if text is None or unmasked:
        return text
    return _NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group().replace(" ", "")), text)


def _index(settings: Settings) -> SubjectIndex:
    return subject_index_from_settings(settings.privacy)


@contextmanager
def _dsar_errors() -> Iterator[None]:
    """A wrong number, reference or step is the operator's to fix: one line, exit 2."""
    with reporting_errors():
        try:
            yield
        except (InvalidNumber, RequestNotFound, RequestStateError, SubjectKeyError,
                InvalidReference, ReferenceNotFound) as exc:
            fail(str(exc), EXIT_USAGE)


def _with_call_reference(note: str | None, reference: str | None) -> str | None:
    """The request keeps which call it was opened from (the caller quoted it)."""
    if reference is None:
        return note
    quoted = f"opened from call reference {parse_reference(reference)}"
    return f"{note.strip()} ({quoted})" if note and note.strip() else quoted


def _number(request: DataSubjectRequest, unmasked: bool) -> str:
    if unmasked and request.number is not None:
        return request.number
    return request.number_masked


def _request_json(
    request: DataSubjectRequest, *, now: datetime, soon_days: int, unmasked: bool
) -> dict[str, object]:
    return {
        "reference": request.reference,
        "id": request.id,
        "type": request.type,
        "channel": request.channel,
        "their_reference": request.their_reference,
        "number": _number(request, unmasked),
        "number_erased": request.number is None,
        "status": request.status,
        "due_state": due_state(request, now, soon_days),
        "received_at": iso(request.received_at),
        "due_at": iso(request.due_at),
        "opened_by": request.opened_by,
        "handled_by": request.handled_by,
        "handled_at": iso(request.handled_at),
        "note": _mask_text(request.note, unmasked),
        "reject_reason": _mask_text(request.reject_reason, unmasked),
        "export_path": request.export_path,
        "export_expires_at": iso(request.export_expires_at),
    }


def _result(request: DataSubjectRequest, unmasked: bool) -> object:
    if request.result is None:
        return None
    text = _mask_text(request.result, unmasked) or ""
    try:
        parsed: object = json.loads(text)
    except ValueError:
        return text
    return parsed


# -- open -------------------------------------------------------------------------------


@app.command("open")
def open_command(
    ctx: typer.Context,
    type_: Annotated[
        str,
        typer.Option(
            "--type",
            metavar="TYPE",
            help="access | export | erasure | anonymise | withdraw | object",
        ),
    ],
    channel: Annotated[
        str,
        typer.Option("--channel", metavar="CHANNEL", help="phone | email | web | letter"),
    ],
    number: Annotated[
        str | None,
        typer.Option("--number", metavar="N", help="The subject's phone number, any format."),
    ] = None,
    call_reference: Annotated[
        str | None,
        typer.Option(
            "--reference", metavar="REF",
            help="Instead of --number: the reference number of one of the subject's calls.",
        ),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", metavar="TEXT", help="Anything worth keeping.")
    ] = None,
    their_reference: Annotated[
        str | None,
        typer.Option("--their-reference", metavar="TEXT",
                     help="The subject's own reference (their letter's), if any."),
    ] = None,
) -> None:
    """Register a request received now; prints its reference and due date."""
    if (number is None) == (call_reference is None):
        fail("give the subject as --number N or as --reference REF (a call's), not both",
             EXIT_USAGE)
    request_type = _choice(type_, list(RequestType), "--type")
    request_channel = _choice(channel, CLI_CHANNELS, "--channel")

    async def run(settings: Settings) -> DataSubjectRequest:
        index = await asyncio.to_thread(_index, settings)
        async with session_for(settings) as session:
            subject = number
            if call_reference is not None:
                subject = await caller_of_reference(session, call_reference)
            assert subject is not None
            return await open_request(
                session,
                index,
                number=subject,
                type=request_type,
                channel=request_channel,
                actor=cli_actor(),
                due_days=settings.privacy.due_days,
                note=_with_call_reference(note, call_reference),
                their_reference=their_reference,
            )

    with _dsar_errors():
        settings = settings_of(ctx)
        request = asyncio.run(run(settings))
    typer.echo(
        f"{request.reference} opened: {request.type} request for {request.number_masked}"
        f" via {request.channel}, due {short_time(request.due_at)} UTC"
        f" ({settings.privacy.due_days} days)"
    )


# -- list -------------------------------------------------------------------------------

LIST_HEADERS = [
    "REFERENCE",
    "TYPE",
    "CHANNEL",
    "NUMBER",
    "STATUS",
    "RECEIVED (UTC)",
    "DUE (UTC)",
    "DUE STATE",
    "HANDLED BY",
]


@app.command("list")
def list_command(
    ctx: typer.Context,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only pending requests past their due date.")
    ] = False,
    due_soon: Annotated[
        bool,
        typer.Option(
            "--due-soon",
            help="Only pending requests due within [privacy] due_soon_days (overdue included).",
        ),
    ] = False,
    status: Annotated[
        str | None,
        typer.Option("--status", metavar="STATUS", help="open | in-progress | done | rejected"),
    ] = None,
    as_json: JsonOption = False,
    unmasked: UnmaskedOption = False,
) -> None:
    """List requests, the one due first at the top."""
    wanted = None if status is None else _choice(status, list(RequestStatus), "--status")

    async def fetch(settings: Settings, now: datetime) -> list[DataSubjectRequest]:
        async with session_for(settings) as session:
            found = await list_requests(
                session,
                status=wanted,
                overdue_only=overdue and not due_soon,
                due_within_days=settings.privacy.due_soon_days if due_soon else None,
                now=now,
            )
            if unmasked:
                await record_unmasked(session, "dsar", [r.id for r in found])
            return found

    now = utcnow()
    with _dsar_errors():
        settings = settings_of(ctx)
        requests = asyncio.run(fetch(settings, now))
    soon_days = settings.privacy.due_soon_days
    if as_json:
        items = [
            _request_json(r, now=now, soon_days=soon_days, unmasked=unmasked) for r in requests
        ]
        typer.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    typer.echo(
        render_table(
            LIST_HEADERS,
            [
                [
                    r.reference,
                    r.type,
                    r.channel,
                    _number(r, unmasked),
                    r.status,
                    short_time(r.received_at),
                    short_time(r.due_at),
                    due_state(r, now, soon_days),
                    r.handled_by,
                ]
                for r in requests
            ],
        )
    )


# -- show -------------------------------------------------------------------------------

RefArgument = Annotated[
    str, typer.Argument(metavar="REF", help="The request's reference (DSAR-2026-0001) or id.")
]


@dataclass(frozen=True)
class _Shown:
    request: DataSubjectRequest
    holdings: SubjectHoldings


def _print_show(shown: _Shown, *, now: datetime, soon_days: int, unmasked: bool) -> None:
    r = shown.request
    number = _number(r, unmasked)
    if r.number is None:
        number += " (number removed by the request)"
    fields: list[tuple[str, object]] = [
        ("reference", r.reference),
        ("id", r.id),
        ("type", r.type),
        ("channel", r.channel),
        ("number", number),
        ("status", r.status),
        ("received", f"{short_time(r.received_at)} UTC"),
        ("due", f"{short_time(r.due_at)} UTC ({due_state(r, now, soon_days)})"),
        ("opened by", r.opened_by),
        ("handled by", r.handled_by),
        ("handled at", None if r.handled_at is None else f"{short_time(r.handled_at)} UTC"),
        ("note", _mask_text(r.note, unmasked)),
    ]
    if r.their_reference is not None:
        fields.insert(4, ("their ref", r.their_reference))
    if r.reject_reason is not None:
        fields.append(("rejected because", _mask_text(r.reject_reason, unmasked)))
    if r.export_path is not None:
        fields.append(("export", f"{r.export_path} (expires {short_time(r.export_expires_at)})"))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        typer.echo(f"{name + ':':<{width + 1}} {'-' if value is None else value}")
    result = _result(r, unmasked)
    typer.echo("")
    if result is None:
        typer.echo("result: -")
    else:
        typer.echo("result:")
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    typer.echo("")
    typer.echo("held about this subject now:")
    summary = HeldSummary.of(shown.holdings).lines()
    width = max(len(name) for name, _ in summary)
    for name, text in summary:
        typer.echo(f"  {name + ':':<{width + 1}} {text}")


@app.command("show")
def show_command(
    ctx: typer.Context,
    ref: RefArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    unmasked: UnmaskedOption = False,
) -> None:
    """One request: its state, due date, result, and what is held about the subject now."""

    async def fetch(settings: Settings) -> _Shown:
        async with session_for(settings) as session:
            request = await get_request(session, ref)
            shown = _Shown(request, await holdings_of(session, request.subject_key))
            if unmasked:
                await record_unmasked(session, "dsar", [request.id])
            return shown

    now = utcnow()
    with _dsar_errors():
        settings = settings_of(ctx)
        shown = asyncio.run(fetch(settings))
    soon_days = settings.privacy.due_soon_days
    if as_json:
        data = {
            **_request_json(shown.request, now=now, soon_days=soon_days, unmasked=unmasked),
            "result": _result(shown.request, unmasked),
            "holdings": asdict(HeldSummary.of(shown.holdings)),
        }
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_show(shown, now=now, soon_days=soon_days, unmasked=unmasked)


# -- reject -----------------------------------------------------------------------------


@app.command("reject")
def reject_command(
    ctx: typer.Context,
    ref: RefArgument,
    reason: Annotated[
        str,
        typer.Option("--reason", metavar="TEXT", help="Why (what the subject will be told)."),
    ],
) -> None:
    """Close a request without acting on it; a reason is required."""

    async def run(settings: Settings) -> DataSubjectRequest:
        async with session_for(settings) as session:
            request = await get_request(session, ref)
            await reject(session, request, actor=cli_actor(), reason=reason)
            return request

    with _dsar_errors():
        request = asyncio.run(run(settings_of(ctx)))
    typer.echo(f"{request.reference} rejected")


# -- run: executes the request's action --------------------------------------------------


def _entries(result: dict[str, object], *path: str) -> list[dict[str, object]]:
    node: object = result
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return [item for item in node if isinstance(item, dict)] if isinstance(node, list) else []


def _print_run(result: dict[str, object], reference: str, complete: bool) -> None:
    summary = result.get("summary")
    if isinstance(summary, str):
        typer.echo(summary)
    else:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    for entry in _entries(result, "recordings", "kept"):
        typer.echo(f"  kept {entry['recording_id']} ({entry['legal_basis']}): {entry['why']}")
    for entry in _entries(result, "recordings", "pending"):
        places = ", ".join(
            f"{p['place']}: {p['why']}" for p in _entries(entry, "places_pending")
        )
        detail = f" ({places})" if places else ""
        typer.echo(f"  pending {entry['recording_id']}: {entry['why']}{detail}")
    if complete:
        typer.echo(f"{reference} done")


@app.command("run")
def run_command(
    ctx: typer.Context,
    ref: RefArgument,
    dpo_decision: Annotated[
        str | None,
        typer.Option(
            "--dpo-decision",
            metavar="TEXT",
            help="Objections only: the DPO's decision upholding it (who, what, when).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Carry out the request (report, export, erasure, ...) and close it when all is done.

    Exits 1, leaving the request in progress, when part of the work must wait (a storage
    backend that cannot be reached); running it again finishes it.
    """
    # Imported here: the actions pull in the storage backends and the export writer.
    from pbx_bridge.subjects.env import RequestEnv
    from pbx_bridge.subjects.export import ExportFailed
    from pbx_bridge.subjects.handling import handle_request, is_complete
    from storage.errors import StorageError

    if dpo_decision is not None and not dpo_decision.strip():
        fail("--dpo-decision must not be empty", EXIT_USAGE)

    async def run(settings: Settings, progress: Reporter) -> dict[str, object]:
        index = await asyncio.to_thread(_index, settings)
        async with sessions_for(settings) as sessions:
            env = RequestEnv(settings, sessions, index, cli_actor(), utcnow, progress)
            return await handle_request(env, ref, decision=dpo_decision)

    with _dsar_errors():
        try:
            with progress_for(f"dsar run {ref}") as progress:
                result = asyncio.run(run(settings_of(ctx), progress))
        except (ExportFailed, StorageError, OSError) as exc:
            fail(f"{ref}: {exc}; the request stays in progress, run it again", EXIT_RUNTIME)
    complete = is_complete(result)
    reference = str(result.get("reference", ref))
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        _print_run(result, reference, complete)
    if not complete:
        typer.echo(
            f"error: {reference} stays in progress: part of the work must wait; run "
            f"`pbx-bridge dsar run {reference}` again",
            err=True,
        )
        raise typer.Exit(EXIT_RUNTIME)


# -- reindex ----------------------------------------------------------------------------


@app.command("reindex")
def reindex_command(
    ctx: typer.Context,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Rows per transaction.")
    ] = DEFAULT_BATCH,
) -> None:
    """Give older calls and consents (caller but no subject key) their key; safe to re-run."""

    async def run(settings: Settings, progress: Reporter) -> ReindexReport:
        index = await asyncio.to_thread(_index, settings)
        async with sessions_for(settings) as sessions:
            return await reindex(sessions, index, batch=batch, progress=progress)

    with _dsar_errors(), progress_for("dsar reindex") as progress:
        report = asyncio.run(run(settings_of(ctx), progress))
    for name, count in (("calls", report.calls), ("consents", report.consents)):
        typer.echo(
            f"{name}: {count.keyed} keyed, {count.no_public_number} without a public number"
        )
