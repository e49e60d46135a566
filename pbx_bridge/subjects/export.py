"""Answering an export request (GDPR art. 15(3), art. 20): a ZIP with the subject's data.

``{privacy.export_dir}/{reference}.zip`` holds every recording of the subject still held
(decrypted: the original bytes, each checked against the sha256 recorded when it was
stored), the report as ``report.json``, ``report.xml`` and ``report.html``, and
``manifest.json`` listing every file with its size and sha256. The ZIP is built in a
``.part`` file beside it and renamed only when complete: a recording that cannot be read
now (a backend down, a recording not yet stored) fails the whole export with a clear
error and leaves no ZIP, and the request stays in progress to be run again.

The export expires ``privacy.export_days`` after it was made; ``expire_exports`` (run on
a schedule by the service) deletes it then.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.history import iso
from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.recordings_admin import backends_from_settings, fetch_recording
from pbx_bridge.storage_setup import closing_backends
from pbx_bridge.subjects.answer_files import (
    FILE_MODE,
    absolute,
    checked_reference,
    private_dir,
    remove_leftovers,
)
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.report import (
    RecordingEntry,
    SubjectReport,
    render_html,
    render_json,
    render_xml,
    report_for_request,
)
from pbx_bridge.subjects.request_session import request_session
from storage.atomic_write import TEMP_SUFFIX, fsync_dir, fsync_file
from storage.audit_trail import record_event
from storage.backends.base import Backend
from storage.errors import RecordingNotFound, StorageError

log = logging.getLogger(__name__)

EXPORT_FORMAT = "pbx-bridge subject export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"
REPORT_JSON = "report.json"
REPORT_XML = "report.xml"
REPORT_HTML = "report.html"
RECORDINGS_FOLDER = "recordings"
EXPORTED_ACTION = "recording.exported"
EXPIRED_ACTION = "dsar.export-expired"
_CHUNK = 1024 * 1024
_NAME_PART = re.compile(r"[^a-z0-9]+")


class ExportFailed(RuntimeError):
    """The export could not be made now; nothing was left behind, run it again later."""


@dataclass(frozen=True)
class _Member:
    name: str
    size_bytes: int
    sha256: str


def export_path(export_dir: Path, reference: str) -> Path:
    return export_dir / f"{checked_reference(reference)}.zip"


def _member_name(recording: RecordingEntry) -> str:
    stamp = recording.started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = _NAME_PART.sub("-", recording.kind.lower()).strip("-") or "recording"
    ext = _NAME_PART.sub("", recording.format.lower()) or "bin"
    return f"{RECORDINGS_FOLDER}/{stamp}-{kind}-{recording.id}.{ext}"


class _ZipBuilder:
    """A ZIP written member by member into ``<dest>.<random>.part``, renamed when done.

    Each method blocks: call them from a worker thread, one at a time.
    """

    def __init__(self, dest: Path, stamp: datetime) -> None:
        self.dest = dest
        self._date_time = stamp.astimezone(UTC).timetuple()[:6]
        self._tmp: Path | None = None
        self._zip: zipfile.ZipFile | None = None

    def open(self) -> None:
        fd, name = tempfile.mkstemp(
            dir=self.dest.parent, prefix=f"{self.dest.name}.", suffix=TEMP_SUFFIX
        )
        os.close(fd)
        self._tmp = Path(name)
        self._zip = zipfile.ZipFile(self._tmp, "w", allowZip64=True)

    def _info(self, name: str, compress: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = compress
        info.external_attr = (0o100000 | FILE_MODE) << 16
        return info

    def add_bytes(self, name: str, data: bytes) -> _Member:
        assert self._zip is not None
        self._zip.writestr(self._info(name, zipfile.ZIP_DEFLATED), data)
        return _Member(name, len(data), hashlib.sha256(data).hexdigest())

    def add_file(self, name: str, path: Path) -> _Member:
        """Copy the file in (stored, not compressed: audio barely deflates), hashing as it goes."""
        assert self._zip is not None
        digest = hashlib.sha256()
        size = 0
        with (
            path.open("rb") as src,
            self._zip.open(self._info(name, zipfile.ZIP_STORED), "w", force_zip64=True) as out,
        ):
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return _Member(name, size, digest.hexdigest())

    def finish(self) -> int:
        assert self._zip is not None and self._tmp is not None
        self._zip.close()
        self._zip = None
        fsync_file(self._tmp)
        size = self._tmp.stat().st_size
        os.replace(self._tmp, self.dest)
        self._tmp = None
        fsync_dir(self.dest.parent)
        return size

    def abort(self) -> None:
        if self._zip is not None:
            # The file is removed next; its state no longer matters.
            with contextlib.suppress(OSError, ValueError, zipfile.BadZipFile):
                self._zip.close()
            self._zip = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _prepare(export_dir: Path, reference: str) -> Path:
    """The export folder (0700), cleared of an interrupted earlier run; a staging folder."""
    private_dir(export_dir)
    remove_leftovers(export_dir, f"{reference}.zip.*{TEMP_SUFFIX}")
    remove_leftovers(export_dir, f".{reference}.*.staging")
    staging = export_dir / f".{reference}.{uuid.uuid4().hex}.staging"
    staging.mkdir(mode=0o700)
    return staging


async def _add_recording(
    env: RequestEnv,
    backends: Mapping[str, Backend],
    builder: _ZipBuilder,
    staging: Path,
    recording: RecordingEntry,
) -> tuple[_Member, dict[str, object]]:
    name = _member_name(recording)
    fetched_to = staging / f"{recording.id}.audio"
    try:
        fetched = await fetch_recording(
            env.sessions,
            backends,
            recording.id,
            fetched_to,
            env.settings,
        )
    except RecordingNotFound as exc:
        raise ExportFailed(
            f"recording {recording.id} was removed while the export was made ({exc}); "
            "no export was written"
        ) from exc
    except StorageError as exc:
        raise ExportFailed(
            f"recording {recording.id} ({recording.status}) cannot be read now: {exc}; "
            "no export was written"
        ) from exc
    try:
        member = await asyncio.to_thread(builder.add_file, name, fetched.path)
    finally:
        await asyncio.to_thread(fetched.path.unlink, missing_ok=True)
    if recording.sha256 is not None and member.sha256 != recording.sha256:
        raise ExportFailed(
            f"recording {recording.id}: the bytes read do not match its stored sha256; "
            "no export was written"
        )
    return member, {
        "id": recording.id,
        "call_id": recording.call_id,
        "kind": recording.kind,
        "legal_basis": recording.legal_basis,
        "started_at": iso(recording.started_at),
        "file": member.name,
        "size_bytes": member.size_bytes,
        "sha256": member.sha256,
        "stored_sha256": recording.sha256,
        "matches": recording.sha256 is None or member.sha256 == recording.sha256,
        "read_from": fetched.backend,
        "decrypted": fetched.decrypted,
    }


async def _build_zip(
    env: RequestEnv,
    report: SubjectReport,
    reference: str,
    dest: Path,
    expires_at: datetime,
) -> tuple[int, list[dict[str, object]], list[_Member]]:
    export_dir = dest.parent
    staging = await asyncio.to_thread(_prepare, export_dir, reference)
    builder = _ZipBuilder(dest, report.generated_at)
    members: list[_Member] = []
    recordings: list[dict[str, object]] = []
    try:
        await asyncio.to_thread(builder.open)
        backends = backends_from_settings(env.settings)
        async with closing_backends(backends):
            env.progress.start(len(report.held_recordings))
            for recording in report.held_recordings:
                member, entry = await _add_recording(env, backends, builder, staging, recording)
                members.append(member)
                recordings.append(entry)
                env.progress.advance()
        for name, data in (
            (REPORT_JSON, render_json(report)),
            (REPORT_XML, render_xml(report)),
            (REPORT_HTML, render_html(report)),
        ):
            members.append(await asyncio.to_thread(builder.add_bytes, name, data))
        manifest = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "reference": reference,
            "generated_at": iso(report.generated_at),
            "expires_at": iso(expires_at),
            "subject": report.number_masked,
            "files": [
                {"name": m.name, "size_bytes": m.size_bytes, "sha256": m.sha256}
                for m in members
            ],
            "recordings": recordings,
        }
        data = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        await asyncio.to_thread(builder.add_bytes, MANIFEST, data)
        size = await asyncio.to_thread(builder.finish)
    except BaseException:
        await asyncio.to_thread(builder.abort)
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    return size, recordings, members


async def answer_export(env: RequestEnv, request: DataSubjectRequest) -> dict[str, object]:
    """Write the export ZIP; set ``export_path`` and ``export_expires_at`` (caller commits).

    Raises ``ExportFailed`` (no ZIP written) when a recording cannot be read now.
    Re-running replaces the ZIP with a fresh one and restarts its expiry.
    """
    reference = checked_reference(request.reference)
    dest = export_path(env.settings.privacy.export_dir, reference)
    now = env.now()
    expires_at = now + timedelta(days=env.settings.privacy.export_days)
    async with request_session(env.sessions, request) as session:
        report = await report_for_request(session, request, env.settings, generated_at=now)
    size, recordings, members = await _build_zip(env, report, reference, dest, expires_at)
    where = absolute(dest)
    async with request_session(env.sessions, request) as session:
        for entry in recordings:
            await record_event(
                session,
                actor=env.actor,
                action=EXPORTED_ACTION,
                target=f"recording:{entry['id']}",
                details={"request": reference},
            )
        request.export_path = str(where)
        request.export_expires_at = expires_at
    log.info(
        "export request %s answered: %d recording(s) of %s in %s, expires %s",
        reference,
        len(recordings),
        request.number_masked,
        where,
        iso(expires_at),
    )
    return {
        "reference": reference,
        "summary": (
            f"export written to {where}: {len(recordings)} recording(s), "
            f"expires {iso(expires_at)}"
        ),
        "export_path": str(where),
        "expires_at": iso(expires_at),
        "size_bytes": size,
        "files": [m.name for m in members] + [MANIFEST],
        "recordings": [
            {"id": e["id"], "file": e["file"], "sha256": e["sha256"]} for e in recordings
        ],
        "counts": report.counts(),
    }


# -- expiry ----------------------------------------------------------------------------


def _remove(path: Path) -> bool:
    """The export ZIP, or an access request's report folder (only files we wrote)."""
    try:
        if path.is_dir():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True


async def expire_exports(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime, actor: str = "service"
) -> list[str]:
    """Delete every export past its expiry; returns the references of the requests.

    Each request is its own transaction: the file goes first, then ``export_path`` is
    cleared with an audit entry, so an interruption at worst leaves a path to a file
    already gone, which the next run clears.
    """
    async with sessions() as session:
        due = (
            await session.scalars(
                select(DataSubjectRequest.id)
                .where(
                    DataSubjectRequest.export_path.is_not(None),
                    DataSubjectRequest.export_expires_at <= now,
                )
                .order_by(DataSubjectRequest.export_expires_at)
            )
        ).all()
    expired: list[str] = []
    for request_id in due:
        async with sessions() as session:
            row = await session.get(DataSubjectRequest, request_id, with_for_update=True)
            if (
                row is None
                or row.export_path is None
                or row.export_expires_at is None
                or row.export_expires_at > now
            ):
                continue
            existed = await asyncio.to_thread(_remove, Path(row.export_path))
            await record_event(
                session,
                actor=actor,
                action=EXPIRED_ACTION,
                target=f"dsar:{row.id}",
                details={
                    "reference": row.reference,
                    "expired_at": iso(row.export_expires_at),
                    "file_deleted": existed,
                },
            )
            row.export_path = None
            await session.commit()
            expired.append(row.reference)
            log.info("export of request %s expired and was deleted", row.reference)
    return expired
