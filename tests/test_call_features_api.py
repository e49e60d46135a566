"""A call's retention by API (``PUT /api/v1/calls/{id}/retention``) and a recording's PCI
pauses in ``GET /api/v1/recordings/{id}``, in-process on the call page's fixture (the
real users module, a recording stored by the real pipeline, the real audit trail), on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import update
from storage_fakes import db_url, sessions
from test_call_page import Console, web
from test_share_links import _entries

from pbx_bridge.calls.models import Call
from pbx_bridge.calls.pauses import store_pause_end, store_pause_start
from pbx_bridge.calls.retention import set_class
from storage.models import Recording, utcnow

__all__ = ["db_url", "sessions", "web"]  # fixtures


async def _classes(web: Console) -> None:
    async with web.sessions() as session:
        await set_class(session, "sales", 730)
        await set_class(session, "discard", 0)
        await session.commit()


async def _put(
    web: Console, user: str, body: object, call_id: str | None = None
) -> httpx.Response:
    return await web.client.put(
        f"/api/v1/calls/{call_id or web.call_id}/retention", json=body, headers=web.api(user)
    )


async def test_a_supervisor_sets_the_calls_retention_and_it_is_audited(web: Console) -> None:
    await _classes(web)
    live = await _put(web, "selim", {"retention_class": "sales"})
    assert live.status_code == 200, live.text
    body = live.json()
    assert body == {
        "call_id": web.call_id, "retention_class": "sales", "retention_days": 730,
        "recordings": [{"id": web.recording_id, "retain_until": None}],  # call still live
    }
    async with web.sessions() as session:
        row = await session.get(Recording, web.recording_id)
        call = await session.get(Call, web.call_id)
        assert row is not None and call is not None
        assert (row.retention_class, row.retention_days) == ("sales", 730)
        assert call.retention_class == "sales"
    (chosen,) = await _entries(web, "call.retention_changed")
    assert chosen.actor.endswith("(selim)") and chosen.target == f"call:{web.call_id}"
    assert json.loads(chosen.details)["class"] == {"from": "default", "to": "sales"}
    (changed,) = await _entries(web, "recording.retention_changed")
    assert changed.actor == chosen.actor and changed.target == f"recording:{web.recording_id}"

    # Once the call has ended, retain_until counts from its end; a 0-day class: the end.
    ended = utcnow().replace(microsecond=0)
    async with web.sessions() as session:
        await session.execute(update(Call).where(Call.id == web.call_id).values(ended_at=ended))
        await session.commit()
    kept = await _put(web, "deniz", {"retention_class": "discard"})  # a dpo may too
    assert kept.status_code == 200, kept.text
    (recording,) = kept.json()["recordings"]
    async with web.sessions() as session:
        row = await session.get(Recording, web.recording_id)
        assert row is not None and row.retain_until == ended
    assert recording["retain_until"] is not None


async def test_who_may_and_what_is_refused(web: Console) -> None:
    await _classes(web)
    for user in ("other", "ayse", "aydin"):  # another extension's supervisor, admin, auditor
        refused = await _put(web, user, {"retention_class": "sales"})
        assert refused.status_code == 403, user
    unknown = await _put(web, "selim", {"retention_class": "forever"})
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "forever" in unknown.json()["detail"]
    for bad in ({"retention_class": "Sales Team"}, {}, {"retention_class": 7}):
        assert (await _put(web, "selim", bad)).status_code == 422, bad
    nobody = await _put(web, "deniz", {"retention_class": "sales"}, str(uuid.uuid4()))
    assert nobody.status_code == 404
    # A line recording under a legal obligation may be kept longer, never shorter.
    async with web.sessions() as session:
        await session.execute(update(Call).where(Call.id == web.call_id)
                              .values(legal_basis="legal-obligation"))
        await session.commit()
    shorter = await _put(web, "deniz", {"retention_class": "discard"})
    assert shorter.status_code == 409
    assert "legal obligation" in shorter.json()["detail"]
    longer = await _put(web, "deniz", {"retention_class": "sales"})
    assert longer.status_code == 200, longer.text
    assert [e.outcome for e in await _entries(web, "call.retention_changed")] == ["ok"]


async def test_a_recordings_pauses_are_in_its_metadata(web: Console) -> None:
    url = f"/api/v1/recordings/{web.recording_id}"
    none = await web.client.get(url, headers=web.api("selim"))
    assert none.status_code == 200 and none.json()["pauses"] == []
    at = utcnow()
    pause_id = await store_pause_start(
        web.sessions, recording_id=web.recording_id, call_id=web.call_id, start_s=1.25,
        at=at, actor="agent:101",
    )
    await store_pause_end(
        web.sessions, pause_id=pause_id, recording_id=web.recording_id, call_id=web.call_id,
        end_s=3.5, at=at + timedelta(seconds=2.25), actor="auto",
    )
    body = (await web.client.get(url, headers=web.api("selim"))).json()
    (pause,) = body["pauses"]
    assert (pause["start_s"], pause["end_s"]) == (1.25, 3.5)
    assert (pause["paused_by"], pause["resumed_by"]) == ("agent:101", "auto")
    assert [e.target for e in await _entries(web, "recording.paused")] == [
        f"recording:{web.recording_id}"
    ]
    assert len(await _entries(web, "recording.resumed")) == 1
    # The call page says where the recording is silent, and why.
    page = await web.client.get(f"/calls/{web.call_id}", headers=await web.signed_in("selim"))
    assert page.status_code == 200
    assert "1.2\u20133.5" in page.text and "agent:101" in page.text, page.text
