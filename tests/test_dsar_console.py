"""The DSAR register in the console and the API, in-process (ASGI through httpx) on the
real users module, a recording stored by the real pipeline on a local backend, the real
request handling (the code ``pbx-bridge dsar run`` runs) and the real audit trail, on
SQLite and PostgreSQL: who may use it (dpo only), open/list/show/run/reject, the answer
file streamed and audited, RFC 9457 problems for bad input, legal holds, and four eyes
(an erasure waits, its asker cannot approve it, a second dpo does and the recording's
file is really gone)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from audit_fixtures import entries_of
from console_clients import bearer_header, session_cookie
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import DirSource, db_url, sessions, wav_bytes

from pbx_bridge.calls.models import Call, DataSubjectRequest
from pbx_bridge.config import Role, Settings
from pbx_bridge.subjects.approvals import Approval
from pbx_bridge.subjects.index import subject_index_from_settings
from pbx_bridge.users import accounts, tokens
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web import csrf
from pbx_bridge.web.app import create_app
from storage.backends.local import LocalBackend
from storage.models import AuditEntry, Recording, RecordingCopy, RecordingKind, utcnow
from storage.pipeline import RecordingPipeline
from storage.replication import Target

__all__ = ["db_url", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-" + "0123456789abcdef" * 2
CALLER = "05321234567"
E164 = "+905321234567"
USERS = [
    ("deniz", Role.DPO, []),
    ("mehmet", Role.DPO, []),
    ("selim", Role.SUPERVISOR, ["101"]),
    ("ayse", Role.ADMIN, []),
    ("aydin", Role.AUDITOR, []),
]


@dataclass
class Desk:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    users: UsersAccounts
    recording_id: str
    stored: Path  # the recording's file on the local backend
    bearer: dict[str, str]

    def api(self, user: str) -> dict[str, str]:
        return bearer_header(self.bearer[user])

    async def form(self, user: str) -> tuple[dict[str, str], str]:
        """A signed-in browser's headers (session and CSRF cookies) and its form token."""
        cookie = await session_cookie(self.users, user, PASSWORD)
        session_id = cookie["Cookie"].split("=", 1)[1]
        nonce = csrf.new_nonce()
        token = csrf.token_for(SECRET.encode(), nonce, session_id)
        self.client.cookies.clear()
        return {"Cookie": f"pbxb_session={session_id}; pbxb_csrf={nonce}"}, token

    async def entries(self, action: str) -> list[AuditEntry]:
        return await entries_of(self.sessions, action)

    async def open(self, kind: str, user: str = "deniz", **extra: object) -> dict[str, object]:
        made = await self.client.post(
            "/api/v1/dsar", headers=self.api(user),
            json={"number": CALLER, "type": kind, "channel": "email", **extra},
        )
        assert made.status_code == 201, made.text
        body: dict[str, object] = made.json()
        return body


DeskFactory = Callable[..., Awaitable[Desk]]


@pytest.fixture
async def make_desk(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[DeskFactory]:
    clients: list[httpx.AsyncClient] = []

    async def make(four_eyes: bool = False) -> Desk:
        settings = Settings(
            auth={"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
            privacy={"subject_key_file": tmp_path / "subject.key",
                     "export_dir": tmp_path / "exports"},
            storage={"spool_dir": tmp_path / "spool", "local": {"path": tmp_path / "local"}},
            web={"secret_key": SECRET, "four_eyes": four_eyes},
        )
        users = await UsersAccounts.from_settings(settings, sessions)
        index = subject_index_from_settings(settings.privacy)
        bearer: dict[str, str] = {}
        async with sessions() as session:
            for name, role, extensions in USERS:
                await accounts.add_user(
                    session, name=name, role=role, password=PASSWORD, auth=settings.auth,
                    actor="cli:root", default_target="101", extensions=extensions,
                )
            await session.commit()
            for name, *_ in USERS:
                _, bearer[name] = await tokens.create_token(
                    session, user_name=name, scopes=["*"], days=1, actor="cli:root"
                )
            call = Call(direction="inbound", caller=CALLER, did="2125550100", extension="101",
                        announcement="before-connect", legal_basis="consent",
                        retention_class="default", language="tr", disposition="answered",
                        channel_id="c1", linkedid="l1", caller_key=index.key_of(CALLER),
                        ended_at=utcnow())  # ended: an erasure leaves live calls be
            session.add(call)
            await session.commit()
        local = LocalBackend(tmp_path / "local")
        local.name = "local"
        source = DirSource(tmp_path / "asterisk")
        pipeline = RecordingPipeline(
            sessions, source, tmp_path / "spool", [Target("local", local)],
            retry_initial_s=0.01, retry_max_s=0.05, stop_timeout_s=0.5,
        )
        async with pipeline:
            row = await pipeline.begin(
                call_id=call.id, kind=RecordingKind.CONVERSATION, legal_basis="consent",
                retention_class="default", retention_days=30,
            )
            source.put(row.asterisk_name, wav_bytes(2.0))
            await pipeline.finished(row.asterisk_name)
            await pipeline.wait_idle()
        async with sessions() as session:
            copy = await session.scalar(
                select(RecordingCopy).where(RecordingCopy.recording_id == row.id))
            assert copy is not None
        stored = tmp_path / "local" / copy.key
        assert stored.exists()
        app = create_app(settings, users, sessions)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://127.0.0.1:8090")
        clients.append(client)
        return Desk(client, sessions, users, row.id, stored, bearer)

    yield make
    for client in clients:
        await client.aclose()


async def test_only_a_dpo_reaches_the_register_page_or_api(make_desk: DeskFactory) -> None:
    desk = await make_desk()
    opened = await desk.open("access")
    ref = opened["reference"]
    for user in ("selim", "ayse", "aydin"):
        headers = desk.api(user)
        for method, path in (
            ("GET", "/api/v1/dsar"), ("GET", f"/api/v1/dsar/{ref}"),
            ("POST", f"/api/v1/dsar/{ref}/run"), ("GET", f"/api/v1/dsar/{ref}/answer"),
            ("GET", "/api/v1/approvals"),
        ):
            answer = await desk.client.request(method, path, headers=headers)
            assert answer.status_code == 403, (user, path)
            assert answer.headers["content-type"] == "application/problem+json"
        refused = await desk.client.post("/api/v1/dsar", headers=headers, json={
            "number": CALLER, "type": "access", "channel": "phone"})
        assert refused.status_code == 403
        cookie, token = await desk.form(user)
        for path in ("/dsar", f"/dsar/{ref}", "/dsar/new"):
            page = await desk.client.get(path, headers=cookie)
            assert page.status_code == 403, (user, path)
            assert "text/html" in page.headers["content-type"]
            assert CALLER not in page.text and E164 not in page.text
        posted = await desk.client.post(f"/dsar/{ref}/run", headers=cookie,
                                        data={"csrf_token": token})
        assert posted.status_code == 403
        dashboard = await desk.client.get("/dashboard", headers=cookie)
        assert 'href="/dsar"' not in dashboard.text
    async with desk.sessions() as session:
        request = await session.scalar(select(DataSubjectRequest))
        assert request is not None and request.status == "open"  # nobody ran it


async def test_open_list_show_run_an_access_request_and_download_its_answer(
    make_desk: DeskFactory,
) -> None:
    desk = await make_desk()
    cookie, token = await desk.form("deniz")
    form = await desk.client.get("/dsar/new", headers=cookie)
    assert form.status_code == 200 and 'name="their_reference"' in form.text
    made = await desk.client.post("/dsar", headers=cookie, data={
        "csrf_token": token, "number": "0532 123 45 67", "kind": "access",
        "channel": "letter", "their_reference": "Ltr-77/2026", "note": "by post",
    })
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    ref = location.split("/")[2].split("?")[0]
    assert ref.startswith("DSAR-")
    page = await desk.client.get(location, headers=cookie)
    assert page.status_code == 200
    assert E164 in page.text and "Ltr-77/2026" in page.text  # unmasked for the dpo
    assert 'data-status="open"' in page.text and desk.recording_id in page.text
    listed = await desk.client.get("/dsar", headers=cookie)
    assert f'data-reference="{ref}"' in listed.text and E164 in listed.text
    api_list = await desk.client.get("/api/v1/dsar?type=access", headers=desk.api("deniz"))
    assert [r["reference"] for r in api_list.json()] == [ref]
    assert api_list.json()[0]["their_reference"] == "Ltr-77/2026"
    assert (await desk.client.get("/api/v1/dsar?type=erasure",
                                  headers=desk.api("deniz"))).json() == []
    # Before it ran there is no answer: 409.
    early = await desk.client.get(f"/api/v1/dsar/{ref}/answer", headers=desk.api("deniz"))
    assert early.status_code == 409 and "run it first" in early.json()["detail"]
    ran = await desk.client.post(f"/dsar/{ref}/run", headers=cookie,
                                 data={"csrf_token": token})
    assert ran.status_code == 303 and ran.headers["location"].endswith("notice=done")
    shown = await desk.client.get(f"/api/v1/dsar/{ref}", headers=desk.api("deniz"))
    body = shown.json()
    assert body["status"] == "done" and body["handled_by"] == "user:deniz"
    assert body["holdings"]["calls"] == 1 and body["holdings"]["recordings_held"] == 1
    assert [r["id"] for r in body["recordings"]] == [desk.recording_id]
    html = await desk.client.get(f"/dsar/{ref}/answer?file=report.html", headers=cookie)
    assert html.status_code == 200 and "attachment" in html.headers["content-disposition"]
    assert html.headers["cache-control"] == "no-store"
    report = await desk.client.get(f"/api/v1/dsar/{ref}/answer?file=report.json",
                                   headers=desk.api("deniz"))
    assert report.status_code == 200
    exported = Path(body["result"]["report_dir"]) / "report.json"
    assert report.content == exported.read_bytes()  # the very file the CLI writes
    assert desk.recording_id in report.text
    downloads = await desk.entries("dsar.answer-downloaded")
    assert [e.actor for e in downloads] == ["user:deniz", f"token:{_token_id(downloads[1])}"
                                            "(deniz)"]
    assert [json.loads(e.details)["file"] for e in downloads] == [
        f"{ref}-report.html", f"{ref}-report.json"]
    started = await desk.entries("dsar.started")
    assert [e.actor for e in started] == ["user:deniz"]
    viewed = await desk.entries("dsar.viewed")
    assert viewed and all(E164 not in e.details for e in viewed)
    unmasked = await desk.entries("dsar.unmasked")
    assert {e.actor.split("(")[0].split(":")[0] for e in unmasked} == {"user", "token"}
    # Running a done request again is a conflict.
    again = await desk.client.post(f"/api/v1/dsar/{ref}/run", headers=desk.api("deniz"))
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "done" in again.json()["detail"]


def _token_id(entry: AuditEntry) -> str:
    return entry.actor.removeprefix("token:").split("(")[0]


async def test_bad_input_is_a_problem_naming_it(make_desk: DeskFactory) -> None:
    desk = await make_desk()
    headers = desk.api("deniz")
    bad_number = await desk.client.post("/api/v1/dsar", headers=headers, json={
        "number": "not a number", "type": "access", "channel": "email"})
    assert bad_number.status_code == 422
    assert bad_number.headers["content-type"] == "application/problem+json"
    assert bad_number.json()["detail"].startswith("number:")
    bad_type = await desk.client.post("/api/v1/dsar", headers=headers, json={
        "number": CALLER, "type": "delete-everything", "channel": "email"})
    assert bad_type.status_code == 422 and "type" in bad_type.json()["detail"]
    unknown = "00000000-0000-4000-8000-000000000000"
    for path in (f"/api/v1/dsar/{unknown}", "/api/v1/dsar/DSAR-2026-9999",
                 f"/api/v1/dsar/{unknown}/answer"):
        answer = await desk.client.get(path, headers=headers)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"
    for bad in ("..", "1 OR 1=1", "x" * 300, "DSAR-2026-0001;drop"):
        answer = await desk.client.get(f"/api/v1/dsar/{bad}", headers=headers)
        assert answer.status_code in (404, 422), bad
    assert (await desk.client.post(f"/api/v1/approvals/{unknown}/approve",
                                   headers=headers)).status_code == 404
    opened = await desk.open("object")
    ref = opened["reference"]
    no_decision = await desk.client.post(f"/api/v1/dsar/{ref}/run", headers=headers)
    assert no_decision.status_code == 422
    assert no_decision.json()["detail"].startswith("dpo_decision:")
    blank = await desk.client.post(f"/api/v1/dsar/{ref}/reject", headers=headers,
                                   json={"reason": "   "})
    assert blank.status_code == 422 and "reason" in blank.json()["detail"]
    rejected = await desk.client.post(f"/api/v1/dsar/{ref}/reject", headers=headers,
                                      json={"reason": "identity not proven"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    twice = await desk.client.post(f"/api/v1/dsar/{ref}/reject", headers=headers,
                                   json={"reason": "again"})
    assert twice.status_code == 409
    erasure = await desk.open("erasure")
    no_file = await desk.client.get(f"/api/v1/dsar/{erasure['reference']}/answer",
                                    headers=headers)
    assert no_file.status_code == 409
    # The form: a bad number is shown again with the message, nothing stored.
    cookie, token = await desk.form("deniz")
    form = await desk.client.post("/dsar", headers=cookie, data={
        "csrf_token": token, "number": "<b>abc</b>", "kind": "access", "channel": "phone"})
    assert form.status_code == 422 and 'id="form-error"' in form.text
    assert "<b>abc</b>" not in form.text and "&lt;b&gt;abc&lt;/b&gt;" in form.text
    refused = await desk.client.post("/dsar", headers=cookie, data={
        "number": CALLER, "kind": "access", "channel": "phone"})  # no CSRF token
    assert refused.status_code == 403
    async with desk.sessions() as session:
        count = len((await session.scalars(select(DataSubjectRequest))).all())
    assert count == 2


async def test_four_eyes_an_erasure_waits_for_a_second_dpo_and_the_file_is_gone(
    make_desk: DeskFactory,
) -> None:
    desk = await make_desk(four_eyes=True)
    opened = await desk.open("erasure")
    ref = str(opened["reference"])
    cookie_a, token_a = await desk.form("deniz")
    asked = await desk.client.post(f"/dsar/{ref}/run", headers=cookie_a,
                                   data={"csrf_token": token_a})
    assert asked.status_code == 303 and asked.headers["location"].endswith("notice=waiting")
    assert desk.stored.exists()  # nothing deleted yet
    register = await desk.client.get("/dsar", headers=cookie_a)
    assert 'id="approvals-count">(1)' in register.text
    (pending,) = (await desk.client.get("/api/v1/approvals", headers=desk.api("deniz"))).json()
    assert pending["requested_by"] == "user:deniz" and pending["state"] == "pending"
    # Deniz cannot approve her own erasure, in the console nor by token.
    own = await desk.client.post(f"/approvals/{pending['id']}/approve", headers=cookie_a,
                                 data={"csrf_token": token_a})
    assert own.status_code == 403 and "second dpo" in own.text
    own_api = await desk.client.post(f"/api/v1/approvals/{pending['id']}/approve",
                                     headers=desk.api("deniz"))
    assert own_api.status_code == 403
    # A second dpo's token neither: four eyes are given in person, in the console.
    token_b = await desk.client.post(f"/api/v1/approvals/{pending['id']}/approve",
                                     headers=desk.api("mehmet"))
    assert token_b.status_code == 403 and "console" in token_b.json()["detail"]
    asking_again = await desk.client.post(f"/api/v1/dsar/{ref}/run", headers=desk.api("deniz"))
    assert asking_again.status_code == 409  # already waiting
    assert desk.stored.exists()
    cookie_b, token_b_form = await desk.form("mehmet")
    approved = await desk.client.post(f"/approvals/{pending['id']}/approve",
                                      headers=cookie_b, data={"csrf_token": token_b_form})
    assert approved.status_code == 303, approved.text
    assert not desk.stored.exists()  # really gone from storage
    async with desk.sessions() as session:
        recording = await session.get(Recording, desk.recording_id)
        request = await session.scalar(
            select(DataSubjectRequest).where(DataSubjectRequest.reference == ref))
        approval = await session.get(Approval, pending["id"])
    assert recording is not None and recording.status == "deleted"
    assert request is not None and request.status == "done" and request.number is None, (
        request.result)
    assert request.handled_by == "user:mehmet"
    assert approval is not None and approval.state == "approved"
    assert approval.decided_by == "user:mehmet" and approval.requested_by == "user:deniz"
    (requested,) = await desk.entries("approval.requested")
    assert requested.actor == "user:deniz"
    decisions = await desk.entries("approval.approved")
    assert [(e.actor, e.outcome) for e in decisions] == [
        ("user:deniz", "refused"), (f"token:{_token_id(decisions[1])}(deniz)", "refused"),
        (f"token:{_token_id(decisions[2])}(mehmet)", "refused"), ("user:mehmet", "ok")]
    assert [e.actor for e in await desk.entries("dsar.done")] == ["user:mehmet"]
    counted = await desk.client.get("/dsar", headers=cookie_b)
    assert 'id="approvals-count">(0)' in counted.text


async def test_four_eyes_refusal_and_an_export_waits_too(make_desk: DeskFactory) -> None:
    desk = await make_desk(four_eyes=True)
    opened = await desk.open("export")
    ref = opened["reference"]
    waiting = await desk.client.post(f"/api/v1/dsar/{ref}/run", headers=desk.api("deniz"))
    assert waiting.status_code == 202
    approval = waiting.json()["approval"]
    assert approval["action"] == "dsar.run" and waiting.json()["complete"] is False
    blank = await desk.client.post(f"/api/v1/approvals/{approval['id']}/refuse",
                                   headers=desk.api("mehmet"), json={"reason": ""})
    assert blank.status_code == 422
    refused = await desk.client.post(f"/api/v1/approvals/{approval['id']}/refuse",
                                     headers=desk.api("mehmet"),
                                     json={"reason": "ask for ID first"})
    assert refused.status_code == 200 and refused.json()["state"] == "refused"
    assert refused.json()["refuse_reason"] == "ask for ID first"
    late = await desk.client.post(f"/api/v1/approvals/{approval['id']}/refuse",
                                  headers=desk.api("mehmet"), json={"reason": "x"})
    assert late.status_code == 409
    (entry,) = await desk.entries("approval.refused")
    assert entry.actor.endswith("(mehmet)") and "ask for ID" not in entry.details
    shown = (await desk.client.get(f"/api/v1/dsar/{ref}", headers=desk.api("deniz"))).json()
    assert shown["status"] == "open"  # nothing was done
    # Asked again and approved in the console by the second dpo: the ZIP is made.
    again = await desk.client.post(f"/api/v1/dsar/{ref}/run", headers=desk.api("deniz"))
    assert again.status_code == 202
    cookie_b, token_b = await desk.form("mehmet")
    done = await desk.client.post(f"/approvals/{again.json()['approval']['id']}/approve",
                                  headers=cookie_b, data={"csrf_token": token_b})
    assert done.status_code == 303
    answer = await desk.client.get(f"/api/v1/dsar/{ref}/answer", headers=desk.api("deniz"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(BytesIO(answer.content)).namelist()
    assert "manifest.json" in names and any(desk.recording_id in n for n in names)


async def test_legal_hold_and_an_unhold_under_four_eyes(make_desk: DeskFactory) -> None:
    desk = await make_desk(four_eyes=True)
    opened = await desk.open("access")
    ref = opened["reference"]
    cookie_a, token_a = await desk.form("deniz")
    hold_url = f"/dsar/{ref}/recordings/{desk.recording_id}/hold"
    empty = await desk.client.post(hold_url, headers=cookie_a,
                                   data={"csrf_token": token_a, "reason": " "})
    assert empty.status_code == 422 and 'id="dsar-error"' in empty.text
    held = await desk.client.post(hold_url, headers=cookie_a,
                                  data={"csrf_token": token_a, "reason": "court order 12"})
    assert held.status_code == 303
    twice = await desk.client.post(hold_url, headers=cookie_a,
                                   data={"csrf_token": token_a, "reason": "again"})
    assert twice.status_code == 409
    release_url = f"/dsar/{ref}/recordings/{desk.recording_id}/release"
    asked = await desk.client.post(release_url, headers=cookie_a, data={"csrf_token": token_a})
    assert asked.headers["location"].endswith("notice=release-waiting")
    async with desk.sessions() as session:
        row = await session.get(Recording, desk.recording_id)
        assert row is not None and row.hold_reason == "court order 12"  # still held
    (pending,) = (await desk.client.get("/api/v1/approvals", headers=desk.api("deniz"))).json()
    assert pending["action"] == "recordings.release"
    assert pending["recording_id"] == desk.recording_id
    cookie_b, token_b = await desk.form("mehmet")
    approved = await desk.client.post(f"/approvals/{pending['id']}/approve",
                                      headers=cookie_b, data={"csrf_token": token_b})
    assert approved.status_code == 303
    async with desk.sessions() as session:
        row = await session.get(Recording, desk.recording_id)
        assert row is not None and row.hold_reason is None
    released = await desk.entries("recording.released")
    assert [e.actor for e in released] == ["user:mehmet"]
    assert [e.actor for e in await desk.entries("recording.held")] == ["user:deniz"]
    # Another subject's recording (or none) is not held from this request's page.
    other = "00000000-0000-4000-8000-000000000000"
    foreign = await desk.client.post(f"/dsar/{ref}/recordings/{other}/hold", headers=cookie_a,
                                     data={"csrf_token": token_a, "reason": "x"})
    assert foreign.status_code == 404


async def test_without_four_eyes_an_erasure_runs_at_once(make_desk: DeskFactory) -> None:
    desk = await make_desk(four_eyes=False)
    opened = await desk.open("erasure")
    ran = await desk.client.post(f"/api/v1/dsar/{opened['reference']}/run",
                                 headers=desk.api("deniz"))
    assert ran.status_code == 200 and ran.json()["complete"] is True
    assert ran.json()["request"]["status"] == "done" and ran.json()["approval"] is None
    assert not desk.stored.exists()
    assert (await desk.client.get("/api/v1/approvals", headers=desk.api("deniz"))).json() == []


async def test_the_register_filters_and_marks_overdue(make_desk: DeskFactory) -> None:
    desk = await make_desk()
    late, soon = await desk.open("access"), await desk.open("erasure")
    await desk.open("export")
    async with desk.sessions() as session:
        for ref, days in ((late["reference"], -1), (soon["reference"], 2)):
            row = await session.scalar(
                select(DataSubjectRequest).where(DataSubjectRequest.reference == ref))
            assert row is not None
            row.due_at = utcnow() + timedelta(days=days)
        await session.commit()
    cookie, _ = await desk.form("deniz")
    page = await desk.client.get("/dsar", headers=cookie)
    assert f'data-reference="{late["reference"]}" data-due-state="overdue"' in page.text
    assert f'data-reference="{soon["reference"]}" data-due-state="due-soon"' in page.text
    overdue = await desk.client.get("/dsar?due=overdue", headers=cookie)
    assert late["reference"] in overdue.text and soon["reference"] not in overdue.text
    due_soon = await desk.client.get("/api/v1/dsar?due=due-soon", headers=desk.api("deniz"))
    assert {r["reference"] for r in due_soon.json()} == {late["reference"], soon["reference"]}
    by_kind = await desk.client.get("/dsar?kind=erasure", headers=cookie)
    assert soon["reference"] in by_kind.text and late["reference"] not in by_kind.text
    assert (await desk.client.get("/dsar?kind=bogus", headers=cookie)).status_code == 400
    turkish = await desk.client.get("/dsar", headers={**cookie, "Accept-Language": "tr"})
    assert "Süresi geçti" in turkish.text and "Başvuru aç" in turkish.text


async def test_the_openapi_document_describes_the_dsar_api(make_desk: DeskFactory) -> None:
    desk = await make_desk()
    document = (await desk.client.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    for path in ("/api/v1/dsar", "/api/v1/dsar/{dsar_id}", "/api/v1/dsar/{dsar_id}/run",
                 "/api/v1/dsar/{dsar_id}/reject", "/api/v1/dsar/{dsar_id}/answer",
                 "/api/v1/approvals", "/api/v1/approvals/{approval_id}/approve",
                 "/api/v1/approvals/{approval_id}/refuse"):
        assert path in paths, path
    schemas = document["components"]["schemas"]
    assert {"DsarOut", "DsarDetailOut", "ApprovalOut", "RunOut", "DsarIn"} <= set(schemas)
    assert "application/problem+json" in paths["/api/v1/dsar"]["post"]["responses"]["422"][
        "content"]


async def test_a_token_without_unmask_sees_the_register_masked(make_desk: DeskFactory) -> None:
    desk = await make_desk()
    opened = await desk.open("access")
    async with desk.sessions() as session:
        _, narrow = await tokens.create_token(
            session, user_name="deniz", scopes=["dsar.*"], days=1, actor="cli:root")
        await session.commit()
    headers = bearer_header(narrow)
    listed = await desk.client.get("/api/v1/dsar", headers=headers)
    assert listed.status_code == 200
    (row,) = listed.json()
    assert row["number"] == "0532***4567" and row["number_erased"] is False
    shown = await desk.client.get(f"/api/v1/dsar/{opened['reference']}", headers=headers)
    assert shown.json()["number"] == "0532***4567" and E164 not in shown.text
    assert await desk.entries("dsar.unmasked") == []
    full = await desk.client.get("/api/v1/dsar", headers=desk.api("deniz"))
    assert full.json()[0]["number"] == E164
    assert len(await desk.entries("dsar.unmasked")) == 1
