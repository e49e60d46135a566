"""The call page, ``GET /api/v1/calls/{id}``, ``/api/v1/recordings/{id}`` and its media,
in-process (ASGI through httpx) on the real users module (argon2 users, tokens, sessions),
a recording stored by the real pipeline (stereo, a plain and an encrypted copy) and the
real audit trail, on SQLite and PostgreSQL: who may see and hear what, IDOR, ids that are
not UUIDs, 206 ranges and the ``recording.played`` entry of every listen."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from console_clients import bearer_header, session_cookie
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import DirSource, db_url, sessions
from test_playback import noise_wav

from pbx_bridge.calls.extensions import set_extension
from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.transfers import (
    RecordingEffect,
    TransferAttempt,
    TransferMode,
    TransferOutcome,
    store_transfer,
)
from pbx_bridge.config import RecordingMode, Role, Settings
from pbx_bridge.users import accounts, tokens
from pbx_bridge.users.console_accounts import UsersAccounts
from pbx_bridge.web.app import create_app
from storage.backends.local import LocalBackend
from storage.envelope import EnvelopeEncryptor
from storage.keyring import Keyring
from storage.legs import Layout, leg_names
from storage.models import AuditEntry, Recording, RecordingCopy, RecordingKind, utcnow
from storage.pipeline import RecordingPipeline
from storage.playback import Player
from storage.replication import Target
from storage.retention import hold

__all__ = ["db_url", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-" + "0123456789abcdef" * 2
CALLER = "05321234567"
# name, role, extensions, unmask
USERS = [
    ("selim", Role.SUPERVISOR, ["101"], False),
    ("other", Role.SUPERVISOR, ["102"], False),
    ("deniz", Role.DPO, [], False),
    ("ayse", Role.ADMIN, [], False),
    ("aydin", Role.AUDITOR, [], False),
]


@dataclass
class Console:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    users: UsersAccounts
    call_id: str
    other_call_id: str
    recording_id: str
    plain: bytes
    bearer: dict[str, str]  # user -> token
    files: list[Path]  # the recording's stored copies

    def api(self, user: str) -> dict[str, str]:
        return bearer_header(self.bearer[user])

    async def signed_in(self, user: str) -> dict[str, str]:
        return await session_cookie(self.users, user, PASSWORD)

    async def played(self) -> list[AuditEntry]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "recording.played")
                .order_by(AuditEntry.seq)
            )
            return list(rows.all())


@pytest.fixture
async def web(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Console]:
    settings = Settings(
        auth={"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
        privacy={"subject_key_file": tmp_path / "subject.key",
                 "export_dir": tmp_path / "exports"},  # DSAR answers (the API's tests)
        web={"secret_key": SECRET},
    )
    users = await UsersAccounts.from_settings(settings, sessions)
    bearer: dict[str, str] = {}
    async with sessions() as session:
        await set_extension(session, "102", RecordingMode.ALWAYS)
        for name, role, extensions, unmask in USERS:
            await accounts.add_user(
                session, name=name, role=role, password=PASSWORD, auth=settings.auth,
                actor="cli:root", default_target="101", extensions=extensions, unmask=unmask,
            )
        await session.commit()
        for name, *_ in USERS:
            _, bearer[name] = await tokens.create_token(
                session, user_name=name, scopes=["*"], days=1, actor="cli:root"
            )
        calls = [
            Call(direction="inbound", caller=CALLER, did="2125550100", extension=ext,
                 announcement="before-connect", legal_basis="consent",
                 retention_class="default", language="tr", disposition="answered",
                 channel_id=f"c{ext}", linkedid=f"l{ext}")
            for ext in ("101", "102")
        ]
        session.add_all(calls)
        await session.commit()
        call_id, other_call_id = calls[0].id, calls[1].id
    local, vault = LocalBackend(tmp_path / "local"), LocalBackend(tmp_path / "vault")
    local.name, vault.name = "local", "vault"
    keyring = Keyring({"mk-test": os.urandom(32)}, "mk-test")
    source = DirSource(tmp_path / "asterisk")
    pipeline = RecordingPipeline(
        sessions, source, tmp_path / "spool",
        [Target("local", local), Target("vault", vault, encrypt=True)],
        encryptor=EnvelopeEncryptor(sessions, keyring),
        retry_initial_s=0.01, retry_max_s=0.05, stop_timeout_s=0.5,
    )
    async with pipeline:
        row = await pipeline.begin(
            call_id=call_id, kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="default", retention_days=30, layout=Layout.STEREO,
        )
        for seed, name in enumerate(leg_names(row)):
            source.put(name, noise_wav(4.0, seed))
            await pipeline.finished(name)
        await pipeline.wait_idle()
    async with sessions() as session:
        session.add(Consent(
            call_id=call_id, caller=CALLER, decision="granted", digit="1", language="tr",
            prompt_name="consent", prompt_version="v3", prompt_sha256="ab" * 32,
            times_played=1,
        ))
        await session.commit()
        stored = await session.get(Recording, row.id)
        assert stored is not None and stored.location
        copies = {c.backend: c.key for c in await session.scalars(
            select(RecordingCopy).where(RecordingCopy.recording_id == row.id))}
    plain = (tmp_path / "local" / copies["local"]).read_bytes()
    files = [tmp_path / "local" / copies["local"], tmp_path / "vault" / copies["vault"]]
    player = Player(sessions, {"local": local, "vault": vault}, keyring)
    app = create_app(settings, users, sessions, player)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090"
    ) as client:
        yield Console(client, sessions, users, call_id, other_call_id, row.id, plain, bearer,
                      files)
    await player.close()


async def test_the_call_api_shows_a_supervisor_their_call_masked_and_refuses_others(
    web: Console,
) -> None:
    mine = await web.client.get(f"/api/v1/calls/{web.call_id}", headers=web.api("selim"))
    assert mine.status_code == 200
    body = mine.json()
    assert body["id"] == web.call_id and body["extension"] == "101"
    assert body["caller"] != CALLER and body["caller"].endswith("4567")  # masked
    assert body["consent"]["prompt_version"] == "v3" and body["consent"]["digit"] == "1"
    assert body["consent"]["prompt_sha256"] == "ab" * 32
    (recording,) = body["recordings"]
    assert recording["id"] == web.recording_id and recording["layout"] == "stereo"
    # IDOR: another extension's call is refused, and never in their list.
    other = await web.client.get(f"/api/v1/calls/{web.other_call_id}", headers=web.api("selim"))
    assert other.status_code == 403
    assert other.headers["content-type"] == "application/problem+json"
    listed = await web.client.get("/api/v1/calls", headers=web.api("selim"))
    assert [c["id"] for c in listed.json()] == [web.call_id]
    # The dpo sees both, unmasked.
    dpo = await web.client.get(f"/api/v1/calls/{web.other_call_id}", headers=web.api("deniz"))
    assert dpo.status_code == 200 and dpo.json()["caller"] == CALLER
    for role_user in ("ayse", "aydin"):
        refused = await web.client.get(f"/api/v1/calls/{web.call_id}",
                                       headers=web.api(role_user))
        assert refused.status_code == 403


async def test_ids_that_are_not_uuids_and_unknown_ids_never_reach_a_query(
    web: Console,
) -> None:
    headers = web.api("deniz")
    unknown = "00000000-0000-4000-8000-000000000000"
    for path in (f"/api/v1/calls/{unknown}", f"/api/v1/recordings/{unknown}",
                 f"/api/v1/recordings/{unknown}/media"):
        answer = await web.client.get(path, headers=headers)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"
    for bad in ("..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "1 OR 1=1", "x" * 300,
                "%00", "../../etc/passwd", "..\\..\\boot.ini"):
        for template in ("/api/v1/calls/{}", "/api/v1/recordings/{}",
                         "/api/v1/recordings/{}/media"):
            answer = await web.client.get(template.format(bad), headers=headers)
            assert answer.status_code in (404, 422), (template, bad, answer.status_code)
            assert answer.headers["content-type"] == "application/problem+json"
        page = await web.client.get(f"/calls/{bad}", headers=await web.signed_in("deniz"))
        # A client (httpx, a browser) folds dot segments itself: "/calls/.." is "/",
        # which sends a signed-in user on to their start page.
        if page.status_code == 303:
            assert bad.startswith(".."), bad
        else:
            assert page.status_code in (400, 404), (bad, page.status_code)
            assert "text/html" in page.headers["content-type"]
    assert await web.played() == []


async def test_recording_metadata_says_stereo_and_follows_the_same_rules(web: Console) -> None:
    path = f"/api/v1/recordings/{web.recording_id}"
    mine = await web.client.get(path, headers=web.api("selim"))
    assert mine.status_code == 200
    body = mine.json()
    assert body["channels"] == ["caller", "agent"] and body["call_id"] == web.call_id
    assert body["caller"] != CALLER and body["on_hold"] is False
    assert (await web.client.get(path, headers=web.api("other"))).status_code == 403
    assert (await web.client.get(path, headers=web.api("ayse"))).status_code == 403


async def test_a_range_is_206_with_the_bytes_and_every_listen_is_audited(
    web: Console,
) -> None:
    path = f"/api/v1/recordings/{web.recording_id}/media"
    first = await web.client.get(path, headers={**web.api("selim"), "Range": "bytes=0-99"})
    assert first.status_code == 206 and len(first.content) == 100
    assert first.headers["content-range"].startswith("bytes 0-99/")
    assert first.content[:4] == b"RIFF"
    assert first.content == web.plain[:100]
    seek = await web.client.get(path, headers={**web.api("deniz"), "Range": "bytes=1000-"})
    assert seek.status_code == 206
    head = await web.client.head(path, headers=web.api("selim"))
    assert head.status_code == 200
    assert seek.content == web.plain[1000:]
    played = await web.played()  # two GETs, two entries; the HEAD gave no audio
    assert [e.target for e in played] == [f"recording:{web.recording_id}"] * 2
    assert played[0].actor.startswith("token:") and played[0].actor.endswith("(selim)")
    assert played[1].actor.endswith("(deniz)")
    details = [json.loads(e.details) for e in played]
    assert details[0]["range"] == "0-99" and details[0]["bytes"] == 100
    assert details[0]["status"] == 206 and details[0]["call_id"] == web.call_id
    assert details[0]["via"] == "api"
    assert details[1]["range"].startswith("1000-")


async def test_admin_auditor_and_other_supervisors_cannot_listen(web: Console) -> None:
    path = f"/api/v1/recordings/{web.recording_id}/media"
    for user in ("ayse", "aydin", "other"):
        answer = await web.client.get(path, headers={**web.api(user), "Range": "bytes=0-9"})
        assert answer.status_code == 403, user
        assert answer.headers["content-type"] == "application/problem+json"
    page_media = f"/recordings/{web.recording_id}/media"
    refused = await web.client.get(page_media, headers=await web.signed_in("ayse"))
    assert refused.status_code == 403
    assert await web.played() == []


async def test_the_call_page_shows_the_proof_the_player_and_the_audit(web: Console) -> None:
    cookie = await web.signed_in("selim")
    page = await web.client.get(f"/calls/{web.call_id}", headers=cookie)
    assert page.status_code == 200, page.text
    html = page.text
    assert CALLER not in html and "4567" in html
    assert "v3" in html and "ab" * 32 in html
    assert f'src="/recordings/{web.recording_id}/media"' in html
    assert 'preload="none"' in html
    assert "caller on the left, agent on the right" in html or "solda arayan" in html
    listened = await web.client.get(
        f"/recordings/{web.recording_id}/media", headers={**cookie, "Range": "bytes=0-"}
    )
    assert listened.status_code == 206 and listened.content[:4] == b"RIFF"
    (entry,) = await web.played()
    assert entry.actor == "user:selim" and json.loads(entry.details)["via"] == "console"
    again = await web.client.get(f"/calls/{web.call_id}", headers=cookie)
    assert "recording.played" in again.text and "user:selim" in again.text
    other = await web.client.get(f"/calls/{web.other_call_id}", headers=cookie)
    assert other.status_code == 403 and "text/html" in other.headers["content-type"]
    admin = await web.client.get(f"/calls/{web.call_id}", headers=await web.signed_in("ayse"))
    assert admin.status_code == 403
    signed_out = await web.client.get(f"/calls/{web.call_id}")
    assert signed_out.status_code == 303


async def test_storage_failures_tell_a_supervisor_nothing_of_backends(web: Console) -> None:
    for path in web.files:
        path.unlink()
    url = f"/api/v1/recordings/{web.recording_id}/media"
    supervisor = await web.client.get(url, headers=web.api("selim"))
    assert supervisor.status_code == 503
    detail = supervisor.json()["detail"]
    assert "local" not in detail and "vault" not in detail and web.recording_id not in detail
    assert str(web.files[0].parent) not in supervisor.text
    dpo = await web.client.get(url, headers=web.api("deniz"))
    assert dpo.status_code == 503 and "local" in dpo.json()["detail"]
    assert await web.played() == []


async def test_a_hold_shows_on_the_page_its_reason_only_to_the_dpo(web: Console) -> None:
    await hold(web.sessions, web.recording_id, "court order 2026/17", actor="cli:dpo")
    supervisor = await web.client.get(
        f"/calls/{web.call_id}", headers=await web.signed_in("selim")
    )
    assert "cli:dpo" in supervisor.text and "court order" not in supervisor.text
    dpo = await web.client.get(
        f"/calls/{web.call_id}",
        headers={**await web.signed_in("deniz"), "Accept-Language": "tr"},
    )
    assert dpo.status_code == 200 and dpo.headers["content-language"] == "tr"
    assert "court order 2026/17" in dpo.text and CALLER in dpo.text
    assert "Rıza kanıtı" in dpo.text  # noqa: RUF001 (Turkish)
    assert "solda arayan, sağda temsilci" in dpo.text
    assert "recording.held" in dpo.text  # the hold is in the call's audit
    metadata = await web.client.get(
        f"/api/v1/recordings/{web.recording_id}", headers=web.api("selim")
    )
    assert metadata.json()["on_hold"] is True


async def test_transfers_show_on_the_call_page_and_in_the_api(web: Console) -> None:
    now = utcnow()
    async with web.sessions() as session:
        call = await session.get(Call, web.call_id)
        assert call is not None
        call.answered_at, call.ended_at = now - timedelta(minutes=2), now
        await session.commit()
    await store_transfer(web.sessions, TransferAttempt(
        call_id=web.call_id, mode=TransferMode.ATTENDED, from_extension="101",
        to_extension="105", requested_by="agent:101", requested_at=now - timedelta(minutes=1),
        answered_at=now - timedelta(seconds=55), ended_at=now - timedelta(seconds=40),
        outcome=TransferOutcome.COMPLETED, recording=RecordingEffect.STOPPED,
    ))
    page = await web.client.get(f"/calls/{web.call_id}", headers=await web.signed_in("selim"))
    assert page.status_code == 200, page.text
    assert 'id="handled-by">101 → 105<' in page.text
    assert "attended" in page.text and "agent:101" in page.text and "stopped" in page.text
    api = await web.client.get(f"/api/v1/calls/{web.call_id}", headers=web.api("selim"))
    assert api.status_code == 200
    data = api.json()
    assert [h["extension"] for h in data["handled_by"]] == ["101", "105"]
    (transfer,) = data["transfers"]
    assert (transfer["mode"], transfer["from"], transfer["to"], transfer["outcome"],
            transfer["recording"]) == ("attended", "101", "105", "completed", "stopped")
    listed = await web.client.get("/api/v1/calls", headers=web.api("selim"))
    assert [c["transfers"] for c in listed.json() if c["id"] == web.call_id] == [[transfer]]
