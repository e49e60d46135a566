"""Answering an access request (KVKK art. 11, GDPR art. 15): the report, as JSON and HTML.

The files go to ``{privacy.export_dir}/{reference}/``, where staff pick them up to send
to the subject. Running the request again writes a fresh report over the old one, so the
answer always reflects what is held when it is sent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from pbx_bridge.calls.history import iso
from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.subjects.answer_files import (
    absolute,
    checked_reference,
    private_dir,
    remove_leftovers,
    write_private,
)
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.report import render_html, render_json, report_for_request
from pbx_bridge.subjects.request_session import request_session

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


def report_dir(env: RequestEnv, request: DataSubjectRequest) -> Path:
    return env.settings.privacy.export_dir / checked_reference(request.reference)


def _write_all(folder: Path, files: dict[str, bytes]) -> dict[str, int]:
    private_dir(folder.parent)
    private_dir(folder)
    remove_leftovers(folder, "*.part")
    return {name: write_private(folder / name, data) for name, data in files.items()}


async def answer_access(env: RequestEnv, request: DataSubjectRequest) -> dict[str, object]:
    """Write report.json and report.html for the request; say what was written."""
    folder = report_dir(env, request)
    generated_at = env.now()
    async with request_session(env.sessions, request) as session:
        report = await report_for_request(
            session, request, env.settings, generated_at=generated_at
        )
    files = {REPORT_JSON: render_json(report), REPORT_HTML: render_html(report)}
    sizes = await asyncio.to_thread(_write_all, folder, files)
    where = absolute(folder)
    # The report is personal data too: it expires like an export (the caller commits).
    request.export_path = str(where)
    request.export_expires_at = generated_at + timedelta(days=env.settings.privacy.export_days)
    log.info(
        "access request %s answered: report for %s in %s",
        request.reference,
        request.number_masked,
        where,
    )
    return {
        "reference": request.reference,
        "summary": f"report written to {where}: {', '.join(files)}",
        "report_dir": str(where),
        "files": [
            {"name": name, "path": str(where / name), "size_bytes": size}
            for name, size in sizes.items()
        ],
        "generated_at": iso(generated_at),
        "expires_at": iso(request.export_expires_at),
        "counts": report.counts(),
    }
