"""``pbx-bridge dsar approvals``: what waits for a dpo's approval (four eyes), and where
to decide it.

The CLI lists and never approves. An approval is a second dpo's, in person: the console
checks who is signed in (a dpo, not the one who asked, not through a token). Root at a
shell is nobody in particular (its audit actor is ``cli:`` and the login name), so an
approval given here would be one person's word for two; it would make four eyes a
formality for anyone with a shell. So each line says where to approve: the DSAR
register's approvals in the console (``[web] base_url``)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from sqlalchemy import select

from pbx_bridge.calls.history import iso
from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.listing_options import JsonOption, short_time
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings
from pbx_bridge.subjects.approvals import Approval, ApprovalState, list_approvals

HEADERS = ["ID", "WHAT", "ABOUT", "ASKED BY", "ASKED (UTC)", "STATE", "DECIDED BY"]


def where_to_decide(settings: Settings) -> str:
    return f"{settings.web.base_url.rstrip('/')}/dsar#approvals"


def _about(approval: Approval, references: dict[str, str]) -> str:
    if approval.user_name is not None:
        return f"user {approval.user_name}"
    parts = []
    if approval.request_id is not None:
        parts.append(references.get(approval.request_id, approval.request_id))
    if approval.recording_id is not None:
        parts.append(f"recording {approval.recording_id}")
    return " ".join(parts) or "-"


def _approval_json(approval: Approval, references: dict[str, str]) -> dict[str, object]:
    return {
        "id": approval.id, "action": approval.action, "about": _about(approval, references),
        "request_id": approval.request_id,
        "reference": references.get(approval.request_id or ""),
        "recording_id": approval.recording_id, "user": approval.user_name,
        "note": approval.note, "requested_by": approval.requested_by,
        "requested_at": iso(approval.requested_at), "state": approval.state,
        "decided_by": approval.decided_by, "decided_at": iso(approval.decided_at),
        "refuse_reason": approval.refuse_reason,
    }


async def _fetch(settings: Settings, every: bool) -> tuple[list[Approval], dict[str, str]]:
    async with session_for(settings) as session:
        found = await list_approvals(session, state=None if every else ApprovalState.PENDING)
        ids = {a.request_id for a in found if a.request_id is not None}
        references: dict[str, str] = {}
        if ids:
            rows = await session.execute(
                select(DataSubjectRequest.id, DataSubjectRequest.reference)
                .where(DataSubjectRequest.id.in_(ids)))
            references = {row[0]: row[1] for row in rows.all()}
        return found, references


def approvals_command(
    ctx: typer.Context,
    every: Annotated[
        bool, typer.Option("--all", help="Decided approvals too (approved, refused).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List what waits for a second dpo's approval, the longest waiting first. Approving
    and refusing happen in the console, signed in as a dpo other than the one who asked
    (the CLI cannot tell who is at the shell, so it never approves)."""
    with reporting_errors():
        settings = settings_of(ctx)
        found, references = asyncio.run(_fetch(settings, every))
    where = where_to_decide(settings)
    if as_json:
        typer.echo(json.dumps({"approve_at": where,
                               "approvals": [_approval_json(a, references) for a in found]},
                              indent=2, ensure_ascii=False))
        return
    if not found:
        typer.echo("no approvals waiting" if not every else "no approvals")
        return
    typer.echo(render_table(HEADERS, [
        [a.id, a.action, _about(a, references), a.requested_by, short_time(a.requested_at),
         a.state, a.decided_by]
        for a in found
    ]))
    pending = sum(1 for a in found if a.state == ApprovalState.PENDING.value)
    if pending:
        typer.echo("")
        typer.echo(f"{pending} waiting: approve or refuse in the console at {where}, signed in"
                   " as a dpo other than the one who asked (the CLI does not approve: four"
                   " eyes need a second person signed in, not a shell)")
