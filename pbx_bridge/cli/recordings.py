"""``pbx-bridge recordings``: what was recorded, where it is, and until when it is kept."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from pbx_bridge.calls.history import DEFAULT_LIMIT, RecordingView, iso, list_recordings
from pbx_bridge.calls.pauses import pause_json
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, sessions_for, settings_of
from pbx_bridge.cli.errors import EXIT_RUNTIME, EXIT_USAGE, fail, reporting_errors
from pbx_bridge.cli.listing_options import (
    JsonOption,
    LimitOption,
    NumberOption,
    SinceOption,
    UnmaskedOption,
    short_time,
    show_listing,
)
from pbx_bridge.cli.table import render_table
from pbx_bridge.config import Settings
from pbx_bridge.privacy import mask_number
from pbx_bridge.recordings_admin import (
    FetchedRecording,
    OutputExists,
    RecordingDetail,
    RecordingGone,
    RetentionChange,
    backends_from_settings,
    change_retention,
    deleter_from_settings,
    fetch_recording,
    recording_detail,
)
from storage.audit_trail import record_event
from storage.deletion import MANUAL_REASON, DeletionOutcome, DeletionRefused
from storage.errors import RecordingNotFound, StorageError
from storage.retention import HoldError, hold, release

app = typer.Typer(help="Recordings (numbers masked unless --unmasked).")


def _duration(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds:.1f}s"


LIST_HEADERS = [
    "STARTED (UTC)",
    "CALLER",
    "KIND",
    "STATUS",
    "DURATION",
    "BASIS",
    "RETAIN UNTIL",
    "ID",
    "LOCATION",
]


def _list_row(r: RecordingView) -> list[object]:
    return [
        short_time(r.started_at),
        r.caller,
        r.kind,
        r.status,
        _duration(r.duration_s),
        r.legal_basis,
        short_time(r.retain_until),
        r.id,
        r.location,
    ]


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    number: NumberOption = None,
    since: SinceOption = None,
    limit: LimitOption = DEFAULT_LIMIT,
    unmasked: UnmaskedOption = False,
) -> None:
    """List recordings, newest first."""
    show_listing(
        ctx,
        lambda session, n, s, lim: list_recordings(session, number=n, since=s, limit=lim),
        headers=LIST_HEADERS, row=_list_row, as_json=as_json, number=number, since=since,
        limit=limit, unmasked=unmasked, kind="recordings",
    )


# -- one recording -----------------------------------------------------------------------

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The recording's id.")]
# Free text typed by an admin (a note, a hold reason) may carry a caller's number.
_NUMBER_IN_TEXT = re.compile(r"\+?\d[\d ]{6,}\d")


def _mask_text(text: str | None, unmasked: bool) -> str | None:
    if text is None or unmasked:
        return text
    return _NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group().replace(" ", "")), text)


@contextmanager
def _recording_errors() -> Iterator[None]:
    """Storage verdicts as one line: a wrong id or a refused change is the admin's to fix."""
    with reporting_errors():
        try:
            yield
        except (
            RecordingNotFound,
            DeletionRefused,
            HoldError,
            RecordingGone,
            OutputExists,
            ValueError,
        ) as exc:
            fail(str(exc), EXIT_USAGE)
        except (StorageError, OSError) as exc:
            fail(str(exc), EXIT_RUNTIME)


def _detail_json(detail: RecordingDetail, unmasked: bool) -> dict[str, object]:
    data: dict[str, object] = {
        **detail.recording.to_json(),
        "asterisk_name": detail.asterisk_name,
        "retention_days": detail.retention_days,
        "error": detail.error,
        "finished_at": iso(detail.finished_at),
        "stored_at": iso(detail.stored_at),
        "hold": None
        if detail.hold_reason is None
        else {"reason": _mask_text(detail.hold_reason, unmasked), "at": iso(detail.held_at)},
        "delete_reason": detail.delete_reason,
        "delete_note": _mask_text(detail.delete_note, unmasked),
        "deleted_at": iso(detail.deleted_at),
        "copies": [
            {
                "backend": c.backend,
                "key": c.key,
                "status": c.status,
                "encrypted": c.encrypted,
                "size_bytes": c.size_bytes,
                "sha256": c.sha256,
                "location": c.location,
                "verified_at": iso(c.verified_at),
                "deleted_at": iso(c.deleted_at),
            }
            for c in detail.copies
        ],
        "tombstone": None,
        "pauses": [pause_json(p) for p in detail.pauses],
    }
    if detail.tombstone is not None:
        t = detail.tombstone
        data["tombstone"] = {
            "reason": t.reason,
            "note": _mask_text(t.note, unmasked),
            "actor": t.actor,
            "requested_at": iso(t.requested_at),
            "deleted_at": iso(t.deleted_at),
            "deleted_where": t.deleted_where,
        }
    return data


def _print_detail(detail: RecordingDetail, unmasked: bool) -> None:
    r = detail.recording
    fields: list[tuple[str, object]] = [
        ("id", r.id),
        ("call", r.call_id),
        ("caller", r.caller),
        ("kind", r.kind),
        ("status", r.status),
        ("format", r.format),
        ("duration", _duration(r.duration_s)),
        ("size", None if r.size_bytes is None else f"{r.size_bytes} bytes"),
        ("sha256", r.sha256),
        ("legal basis", r.legal_basis),
        ("retention", f"{r.retention_class} ({detail.retention_days} days)"),
        ("retain until", short_time(r.retain_until)),
        ("started", short_time(r.started_at)),
        ("finished", short_time(detail.finished_at)),
        ("stored", short_time(detail.stored_at)),
        ("asterisk name", detail.asterisk_name),
        ("error", detail.error),
    ]
    if detail.hold_reason is not None:
        hold = _mask_text(detail.hold_reason, unmasked)
        fields.append(("legal hold", f"since {short_time(detail.held_at)}: {hold}"))
    else:
        fields.append(("legal hold", "no"))
    if detail.delete_reason is not None:
        fields.append(("deletion", f"{detail.delete_reason} ({r.status})"))
        fields.append(("delete note", _mask_text(detail.delete_note, unmasked)))
        fields.append(("deleted", short_time(detail.deleted_at)))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        typer.echo(f"{name + ':':<{width + 1}} {'-' if value is None else value}")
    typer.echo("")
    typer.echo("copies:")
    if detail.copies:
        typer.echo(
            render_table(
                ["BACKEND", "STATUS", "ENCRYPTED", "SIZE", "VERIFIED (UTC)", "KEY", "LOCATION"],
                [
                    [
                        c.backend,
                        c.status,
                        "yes" if c.encrypted else "no",
                        c.size_bytes,
                        short_time(c.verified_at),
                        c.key,
                        c.location,
                    ]
                    for c in detail.copies
                ],
            )
        )
    else:
        typer.echo("(none)")
    if detail.tombstone is not None:
        t = detail.tombstone
        typer.echo("")
        typer.echo(
            f"tombstone: deleted {short_time(t.deleted_at)} UTC because {t.reason}"
            f" (asked {short_time(t.requested_at)} by {t.actor or 'unknown'})"
        )
        if t.note:
            typer.echo(f"note: {_mask_text(t.note, unmasked)}")
        typer.echo(
            render_table(
                ["PLACE", "DELETED (UTC)", "KEY"],
                [[w.get("backend"), w.get("deleted_at"), w.get("key")] for w in t.deleted_where],
            )
        )


@app.command("show")
def show_command(
    ctx: typer.Context,
    recording_id: IdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    unmasked: UnmaskedOption = False,
) -> None:
    """Everything known about one recording: metadata, copies, hold, tombstone."""

    async def fetch(settings: Settings) -> RecordingDetail:
        async with session_for(settings) as session:
            detail = await recording_detail(session, recording_id)
            # Looking at a recording's facts is an access too: audited, like a download.
            await record_event(
                session,
                actor=cli_actor(),
                action="recording.viewed",
                target=f"recording:{detail.recording.id}",
                details={"unmasked": unmasked},
            )
            return detail

    with _recording_errors():
        detail = asyncio.run(fetch(settings_of(ctx)))
    if not unmasked:
        detail = detail.masked()
    if as_json:
        typer.echo(json.dumps(_detail_json(detail, unmasked), indent=2, ensure_ascii=False))
        return
    _print_detail(detail, unmasked)


@app.command("get")
def get_command(
    ctx: typer.Context,
    recording_id: IdArgument,
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="Where to write the audio (new file).")
    ],
) -> None:
    """Copy a recording's audio out of storage (decrypted if its copy is encrypted)."""

    async def fetch(settings: Settings) -> FetchedRecording:
        backends = backends_from_settings(settings)
        try:
            async with sessions_for(settings) as sessions:
                return await fetch_recording(
                    sessions, backends, recording_id, out, settings, actor=cli_actor()
                )
        finally:
            for backend in backends.values():
                await backend.close()

    with _recording_errors():
        fetched = asyncio.run(fetch(settings_of(ctx)))
    typer.echo(
        f"wrote {fetched.path} ({fetched.size_bytes} bytes, sha256 {fetched.sha256}) "
        f"from {fetched.backend}"
    )


def _pending_lines(outcome: DeletionOutcome) -> list[str]:
    return [f"  {p.place} {p.key}: {p.why}" for p in outcome.pending]


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    recording_id: IdArgument,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (kept in the tombstone).")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a recording everywhere (every copy, spool, data key); its metadata stays."""
    if not reason.strip():
        fail("--reason must not be empty", EXIT_USAGE)
    if not yes:
        typer.confirm(
            f"Delete recording {recording_id} everywhere? This cannot be undone", abort=True
        )

    async def run(settings: Settings) -> DeletionOutcome:
        async with sessions_for(settings) as sessions:
            backends = backends_from_settings(settings)
            try:
                deleter = deleter_from_settings(settings, sessions, backends)
                return await deleter.request(
                    recording_id, reason=MANUAL_REASON, note=reason.strip(), actor=cli_actor()
                )
            finally:
                for backend in backends.values():
                    await backend.close()

    with _recording_errors():
        outcome = asyncio.run(run(settings_of(ctx)))
    if outcome.done:
        typer.echo(
            f"recording {recording_id} deleted {short_time(outcome.deleted_at)} UTC "
            f"({len(outcome.deleted_where)} place(s) cleared)"
        )
        return
    typer.echo(
        "\n".join(
            [
                f"error: recording {recording_id}: deletion started but not finished; "
                "the next purge run resumes it:",
                *_pending_lines(outcome),
            ]
        ),
        err=True,
    )
    raise typer.Exit(EXIT_RUNTIME)


@app.command("retain")
def retain_command(
    ctx: typer.Context,
    recording_id: IdArgument,
    class_name: Annotated[
        str,
        typer.Option("--class", metavar="CLASS", help="Retention class (see `retention list`)."),
    ],
) -> None:
    """Give a recording another retention class; its date counts from the call's end."""

    async def run(settings: Settings) -> RetentionChange:
        async with sessions_for(settings) as sessions:
            return await change_retention(
                sessions, recording_id, class_name, settings.retention, actor=cli_actor()
            )

    with _recording_errors():
        change = asyncio.run(run(settings_of(ctx)))
    until = short_time(change.retain_until)
    typer.echo(
        f"recording {recording_id}: class {change.retention_class} ({change.retention_days} days),"
        f" retain until {until + ' UTC' if until else '- (call still live)'}"
        f" (was {short_time(change.old_retain_until) or '-'})"
    )


@app.command("hold")
def hold_command(
    ctx: typer.Context,
    recording_id: IdArgument,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (e.g. the court file number).")
    ],
) -> None:
    """Put a recording on legal hold: never purged until released."""

    async def run(settings: Settings) -> None:
        async with sessions_for(settings) as sessions:
            await hold(sessions, recording_id, reason, actor=cli_actor())

    with _recording_errors():
        asyncio.run(run(settings_of(ctx)))
    typer.echo(f"recording {recording_id} is on legal hold")


@app.command("release")
def release_command(ctx: typer.Context, recording_id: IdArgument) -> None:
    """End a legal hold; the next purge deletes the recording if its retention has ended."""

    async def run(settings: Settings) -> None:
        async with sessions_for(settings) as sessions:
            await release(sessions, recording_id, actor=cli_actor())

    with _recording_errors():
        asyncio.run(run(settings_of(ctx)))
    typer.echo(f"recording {recording_id} released from legal hold")
