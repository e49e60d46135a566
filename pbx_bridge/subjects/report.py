"""The subject report: everything held about one phone number, for the person it belongs to.

KVKK art. 11 and GDPR art. 15 entitle callers to learn what was recorded, on what legal
basis, until when, and what was already deleted. The report is built once as typed data
and rendered three ways: JSON (``report.json``, for scripts), a self-contained HTML page
(``report.html``, for people; Turkish and English labels) and XML (``report.xml``, the
shape WISECP's KVKK module users download). The XML mirrors the JSON one to one:

    <subject-report version="1">          root; the format version is an attribute
      <generated-at/> <controller/>
      <request><reference/><type/></request>
      <subject><number/><number-masked/></subject>
      <summary><calls/><consents/><recordings/><recordings-held/><deletions/>
               <requests/></summary>
      <calls><call>...</call></calls>       one child element per field (below)
      <consents><consent>...</consent></consents>
      <recordings><recording>... <copies><copy>...</copy></copies></recording></recordings>
      <deletions><deletion>... <where><place>...</place></where></deletion></deletions>
      <requests><request>...</request></requests>
    </subject-report>

Field names are the JSON keys with ``_`` written ``-``; times are ISO 8601 UTC ending in
``Z``; booleans are ``true``/``false``; a field without a value is left out; a list
carries a ``count`` attribute and one child per item (none when empty).

The subject's number appears in the clear only in the subject's own report (it is their
data); nothing here logs it.
"""

# Turkish labels: the dotless i is a letter of the language, not a look-alike.
# ruff: noqa: RUF001

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.history import JsonObject, early_digits, iso, key_history_of
from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest
from pbx_bridge.config import Settings
from pbx_bridge.privacy import mask_number
from pbx_bridge.subjects.lookup import holdings_of
from storage.models import Recording, RecordingCopy, RecordingStatus, Tombstone

REPORT_VERSION = 1
REPORT_FORMAT = "pbx-bridge subject report"
# Recordings in these states hold no audio of the subject any more (or never did).
NOT_HELD = frozenset(
    {RecordingStatus.DELETED.value, RecordingStatus.DELETING.value, RecordingStatus.FAILED.value}
)
_IN_CHUNK = 500



# -- the typed report ------------------------------------------------------------------


@dataclass(frozen=True)
class CallEntry:
    id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    direction: str
    caller: str | None
    did: str
    extension: str | None
    disposition: str | None
    legal_basis: str
    language: str
    redaction: str | None


@dataclass(frozen=True)
class ConsentEntry:
    call_id: str
    decision: str
    digit: str | None
    language: str
    prompt_name: str | None
    prompt_version: str | None
    prompt_sha256: str | None
    prompt_text_sha256: str | None
    times_played: int
    prompt_started_at: datetime | None
    decided_at: datetime
    evidence_recording_id: str | None
    # The disclosure's first audio, and keys pressed before it (kept, never an answer).
    disclosure_started_at: datetime | None = None
    early_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class CopyEntry:
    """Where one copy is kept: the backend's name and its country, not its address."""

    backend: str
    jurisdiction: str | None
    status: str
    encrypted: bool
    verified_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class RecordingEntry:
    id: str
    call_id: str
    kind: str
    status: str
    held: bool
    legal_basis: str
    retention_class: str
    retain_until: datetime | None
    format: str
    sha256: str | None
    size_bytes: int | None
    duration_s: float | None
    started_at: datetime
    stored_at: datetime | None
    legal_hold: bool
    held_since: datetime | None
    copies: tuple[CopyEntry, ...]


@dataclass(frozen=True)
class PlaceEntry:
    name: str  # a backend, or "spool", "asterisk", "data_key"
    deleted_at: str | None


@dataclass(frozen=True)
class DeletionEntry:
    recording_id: str
    call_id: str
    kind: str
    legal_basis: str
    retention_class: str
    retain_until: datetime | None
    sha256: str | None
    reason: str
    requested_at: datetime
    deleted_at: datetime
    where: tuple[PlaceEntry, ...]


@dataclass(frozen=True)
class RequestEntry:
    reference: str
    type: str
    channel: str
    status: str
    received_at: datetime
    due_at: datetime
    handled_at: datetime | None
    reject_reason: str | None
    export_expires_at: datetime | None


@dataclass(frozen=True)
class SubjectReport:
    generated_at: datetime
    controller: str | None
    request_reference: str | None
    request_type: str | None
    # E.164 in the clear: only ever given to the subject's own report.
    number: str | None
    number_masked: str
    calls: tuple[CallEntry, ...]
    consents: tuple[ConsentEntry, ...]
    recordings: tuple[RecordingEntry, ...]
    deletions: tuple[DeletionEntry, ...]
    requests: tuple[RequestEntry, ...]

    @property
    def held_recordings(self) -> tuple[RecordingEntry, ...]:
        return tuple(r for r in self.recordings if r.held)

    def counts(self) -> dict[str, int]:
        return {
            "calls": len(self.calls),
            "consents": len(self.consents),
            "recordings": len(self.recordings),
            "recordings_held": len(self.held_recordings),
            "deletions": len(self.deletions),
            "requests": len(self.requests),
        }


# -- building --------------------------------------------------------------------------


def _call_entry(row: Call) -> CallEntry:
    return CallEntry(
        id=row.id,
        started_at=row.started_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        direction=row.direction,
        caller=row.caller,
        did=row.did,
        extension=row.extension,
        disposition=row.disposition,
        legal_basis=row.legal_basis,
        language=row.language,
        redaction=row.redaction,
    )


def _consent_entry(row: Consent) -> ConsentEntry:
    return ConsentEntry(
        call_id=row.call_id,
        decision=row.decision,
        digit=row.digit,
        language=row.language,
        prompt_name=row.prompt_name,
        prompt_version=row.prompt_version,
        prompt_sha256=row.prompt_sha256,
        prompt_text_sha256=row.prompt_text_sha256,
        times_played=row.times_played,
        prompt_started_at=row.prompt_started_at,
        decided_at=row.decided_at,
        evidence_recording_id=row.evidence_recording_id,
        disclosure_started_at=row.disclosure_started_at,
        early_keys=early_digits(key_history_of(row)),
    )


def _copy_entry(row: RecordingCopy, jurisdiction_of: Callable[[str], str | None]) -> CopyEntry:
    return CopyEntry(
        backend=row.backend,
        jurisdiction=jurisdiction_of(row.backend),
        status=row.status,
        encrypted=row.encrypted,
        verified_at=row.verified_at,
        deleted_at=row.deleted_at,
    )


def _recording_entry(row: Recording, copies: Sequence[CopyEntry]) -> RecordingEntry:
    return RecordingEntry(
        id=row.id,
        call_id=row.call_id,
        kind=row.kind,
        status=row.status,
        held=row.status not in NOT_HELD,
        legal_basis=row.legal_basis,
        retention_class=row.retention_class,
        retain_until=row.retain_until,
        format=row.format,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        duration_s=row.duration_s,
        started_at=row.started_at,
        stored_at=row.stored_at,
        legal_hold=row.hold_reason is not None,
        held_since=row.held_at,
        copies=tuple(copies),
    )


def _places(deleted_where: str) -> tuple[PlaceEntry, ...]:
    """Backends and places cleared; keys and paths stay out (they are our infrastructure)."""
    try:
        items = json.loads(deleted_where)
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    places = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("backend"), str):
            at = item.get("deleted_at")
            places.append(PlaceEntry(item["backend"], at if isinstance(at, str) else None))
    return tuple(places)


def _deletion_entry(row: Tombstone) -> DeletionEntry:
    return DeletionEntry(
        recording_id=row.recording_id,
        call_id=row.call_id,
        kind=row.kind,
        legal_basis=row.legal_basis,
        retention_class=row.retention_class,
        retain_until=row.retain_until,
        sha256=row.sha256,
        reason=row.reason,
        requested_at=row.requested_at,
        deleted_at=row.deleted_at,
        where=_places(row.deleted_where),
    )


def _request_entry(row: DataSubjectRequest) -> RequestEntry:
    return RequestEntry(
        reference=row.reference,
        type=row.type,
        channel=row.channel,
        status=row.status,
        received_at=row.received_at,
        due_at=row.due_at,
        handled_at=row.handled_at,
        reject_reason=row.reject_reason,
        export_expires_at=row.export_expires_at,
    )


async def _copies_of(
    session: AsyncSession, recording_ids: Sequence[str]
) -> dict[str, list[RecordingCopy]]:
    found: dict[str, list[RecordingCopy]] = {}
    for start in range(0, len(recording_ids), _IN_CHUNK):
        batch = list(recording_ids[start : start + _IN_CHUNK])
        rows = await session.scalars(
            select(RecordingCopy)
            .where(RecordingCopy.recording_id.in_(batch))
            .order_by(RecordingCopy.backend)
        )
        for row in rows:
            found.setdefault(row.recording_id, []).append(row)
    return found


def _no_jurisdiction(backend: str) -> str | None:
    return None


async def build_report(
    session: AsyncSession,
    subject_key: str,
    *,
    generated_at: datetime,
    number: str | None = None,
    number_masked: str | None = None,
    controller: str | None = None,
    request: DataSubjectRequest | None = None,
    jurisdiction_of: Callable[[str], str | None] = _no_jurisdiction,
) -> SubjectReport:
    """Everything held about the subject with this key, as of now.

    ``number`` is shown in the clear: pass it only for the subject's own report.
    """
    held = await holdings_of(session, subject_key)
    copies = await _copies_of(session, [r.id for r in held.recordings])
    return SubjectReport(
        generated_at=generated_at,
        controller=controller,
        request_reference=None if request is None else request.reference,
        request_type=None if request is None else request.type,
        number=number,
        number_masked=number_masked if number_masked is not None else mask_number(number),
        calls=tuple(_call_entry(c) for c in held.calls),
        consents=tuple(_consent_entry(c) for c in held.consents),
        recordings=tuple(
            _recording_entry(r, [_copy_entry(c, jurisdiction_of) for c in copies.get(r.id, [])])
            for r in held.recordings
        ),
        deletions=tuple(_deletion_entry(t) for t in held.tombstones),
        requests=tuple(_request_entry(r) for r in held.requests),
    )


# -- JSON ------------------------------------------------------------------------------


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def report_to_json(report: SubjectReport) -> JsonObject:
    """The report as plain JSON types; ``render_xml`` mirrors exactly this shape."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "generated_at": iso(report.generated_at),
        "controller": report.controller,
        "request": {"reference": report.request_reference, "type": report.request_type},
        "subject": {"number": report.number, "number_masked": report.number_masked},
        "summary": report.counts(),
        "calls": _plain(report.calls),
        "consents": _plain(report.consents),
        "recordings": _plain(report.recordings),
        "deletions": _plain(report.deletions),
        "requests": _plain(report.requests),
    }


def render_json(report: SubjectReport) -> bytes:
    return (
        json.dumps(report_to_json(report), ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    ).encode("utf-8")


# -- XML -------------------------------------------------------------------------------

# The element name of each item in a list, by the list's name.
XML_ITEMS = {
    "calls": "call",
    "consents": "consent",
    "recordings": "recording",
    "copies": "copy",
    "deletions": "deletion",
    "where": "place",
    "requests": "request",
    "early_keys": "key",
}
# Characters XML 1.0 cannot hold at all (even escaped): dropped from free text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _xml_fill(parent: ET.Element, name: str, value: object) -> None:
    if value is None:
        return
    element = ET.SubElement(parent, name.replace("_", "-"))
    if isinstance(value, Mapping):
        for key, item in value.items():
            _xml_fill(element, str(key), item)
    elif isinstance(value, list):
        element.set("count", str(len(value)))
        item_name = XML_ITEMS.get(name, "item")
        for item in value:
            _xml_fill(element, item_name, item)
    else:
        element.text = _xml_text(value)


def render_xml(report: SubjectReport) -> bytes:
    data = report_to_json(report)
    root = ET.Element("subject-report", {"version": str(REPORT_VERSION)})
    for key, value in data.items():
        if key in ("version", "format"):
            continue
        _xml_fill(root, key, value)
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


# -- HTML ------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;
color:#1b1b1b;max-width:70rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}.en{color:#666;font-weight:normal}.empty{color:#666}
code{font-size:.8rem;word-break:break-all}dl{display:grid;grid-template-columns:max-content 1fr;
gap:.2rem 1rem}dt{font-weight:600}
"""


def _label(tr: str, en: str) -> str:
    return f'{html.escape(tr)} <span class="en" lang="en">/ {html.escape(en)}</span>'


def _value_html(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "evet / yes" if value else "hayır / no"
    if isinstance(value, datetime):
        return html.escape(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    if isinstance(value, float):
        return f"{value:.1f}"
    text = html.escape(str(value))
    if re.fullmatch(r"[0-9a-f]{64}", str(value)):
        return f"<code>{text}</code>"
    return text


def _cell(value: object) -> str:
    return f"<td>{_value_html(value)}</td>"


def _table(
    title: tuple[str, str],
    headers: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[object]],
) -> str:
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>\n" for row in rows)
    head = "".join(f"<th>{_label(tr, en)}</th>" for tr, en in headers)
    out = f"<h2>{_label(*title)}</h2>\n"
    if not body:
        return out + f'<p class="empty">{_label("Kayıt yok.", "None.")}</p>\n'
    return out + f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"


def _copies_text(copies: Sequence[CopyEntry]) -> str:
    parts = []
    for c in copies:
        where = c.backend if c.jurisdiction is None else f"{c.backend} ({c.jurisdiction})"
        flag = ", encrypted" if c.encrypted else ""
        parts.append(f"{where}: {c.status}{flag}")
    return "; ".join(parts) or "-"


def render_html(report: SubjectReport) -> bytes:
    """A page that opens anywhere: no scripts, no external files, every value escaped."""
    subject = report.number if report.number is not None else report.number_masked
    summary = report.counts()
    facts: list[tuple[tuple[str, str], object]] = [
        (("Numara", "Number"), subject),
        (("Veri sorumlusu", "Data controller"), report.controller),
        (("Başvuru", "Request"), report.request_reference),
        (("Hazırlandı", "Generated"), report.generated_at),
        (("Arama", "Calls"), summary["calls"]),
        (("Onay kaydı", "Consent records"), summary["consents"]),
        (("Ses kaydı (tutulan)", "Recordings (held)"),
         f"{summary['recordings']} ({summary['recordings_held']})"),
        (("Silinen kayıt", "Deletions"), summary["deletions"]),
    ]
    dl = "".join(
        f"<dt>{_label(*name)}</dt><dd>{_value_html(value)}</dd>\n" for name, value in facts
    )
    sections = [
        _table(
            ("Aramalar", "Calls"),
            [("Başlangıç", "Started"), ("Yön", "Direction"), ("Arayan", "Caller"),
             ("Aranan hat", "DID"), ("Dahili", "Extension"), ("Sonuç", "Disposition"),
             ("Bitiş", "Ended"), ("Hukuki sebep", "Legal basis"), ("Arama no", "Call id")],
            ([c.started_at, c.direction, c.caller, c.did, c.extension, c.disposition,
              c.ended_at, c.legal_basis, c.id] for c in report.calls),
        ),
        _table(
            ("Onaylar", "Consents"),
            [("Zaman", "Time"), ("Karar", "Decision"), ("Tuş", "Key"), ("Dil", "Language"),
             ("Dinlenen metin", "Prompt heard"), ("Sürüm", "Version"),
             ("Ses sha256", "Audio sha256"),
             ("Metinden önce basılan tuş", "Key pressed before the disclosure"),
             ("Arama no", "Call id")],
            ([c.decided_at, c.decision, c.digit, c.language, c.prompt_name,
              c.prompt_version, c.prompt_sha256, " ".join(c.early_keys) or None, c.call_id]
             for c in report.consents),
        ),
        _table(
            ("Ses kayıtları", "Recordings"),
            [("Başlangıç", "Started"), ("Tür", "Kind"), ("Durum", "Status"),
             ("Hukuki sebep", "Legal basis"), ("Saklama sınıfı", "Retention class"),
             ("Saklama sonu", "Retain until"), ("Süre (sn)", "Duration (s)"),
             ("Yasal bekletme", "Legal hold"), ("Kopyalar", "Copies"), ("sha256", "sha256"),
             ("Kayıt no", "Recording id")],
            ([r.started_at, r.kind, r.status, r.legal_basis, r.retention_class,
              r.retain_until, r.duration_s, r.legal_hold, _copies_text(r.copies), r.sha256,
              r.id] for r in report.recordings),
        ),
        _table(
            ("Silinenler", "Deletions"),
            [("Silindi", "Deleted"), ("Neden", "Why"), ("Nereden", "Where"), ("Tür", "Kind"),
             ("Hukuki sebep", "Legal basis"), ("Kayıt no", "Recording id")],
            ([d.deleted_at, d.reason, ", ".join(p.name for p in d.where) or None, d.kind,
              d.legal_basis, d.recording_id] for d in report.deletions),
        ),
        _table(
            ("Başvurular", "Requests"),
            [("Referans", "Reference"), ("Tür", "Type"), ("Kanal", "Channel"),
             ("Durum", "Status"), ("Alındı", "Received"), ("Son gün", "Due"),
             ("Sonuçlandı", "Handled"), ("Red nedeni", "Reason for rejection")],
            ([q.reference, q.type, q.channel, q.status, q.received_at, q.due_at,
              q.handled_at, q.reject_reason] for q in report.requests),
        ),
    ]
    title = "Kişisel veri raporu / Personal data report"
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="tr">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{_label('Kişisel veri raporu', 'Personal data report')}</h1>\n"
        f"<dl>\n{dl}</dl>\n" + "".join(sections) + "</body>\n</html>\n"
    )
    return page.encode("utf-8")


# -- for a request ---------------------------------------------------------------------


async def report_for_request(
    session: AsyncSession,
    request: DataSubjectRequest,
    settings: Settings,
    *,
    generated_at: datetime,
) -> SubjectReport:
    """The subject's own report: their number in the clear, when we still hold it."""

    def jurisdiction_of(backend: str) -> str | None:
        try:
            return settings.storage.jurisdiction_of(backend)
        except KeyError:  # a backend no longer configured
            return None

    return await build_report(
        session,
        request.subject_key,
        generated_at=generated_at,
        number=request.number,
        number_masked=request.number_masked,
        controller=settings.prompts.controller,
        request=request,
        jurisdiction_of=jurisdiction_of,
    )
