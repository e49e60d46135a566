"""The dashboard's numbers against their plain definitions (SQLite and PostgreSQL), and its
SVG charts as a reader gets them (parsed, no I/O)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from database_fixtures import db_url, migrated_url, pg_database, session
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.charts import Bar, bar_chart_svg, calls_per_day_svg, consent_rate_per_day_svg
from pbx_bridge.calls.dashboard import ConsentCount, DayCount, call_stats, dashboard
from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest
from storage.models import Recording, RecordingCopy

__all__ = ["db_url", "migrated_url", "pg_database", "session"]

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
TODAY = datetime(2026, 12, 1, tzinfo=UTC)
DECISIONS = ["granted", "declined", "timeout", "not-asked", "withdrawn", None, "granted",
             "not-objected"]


def _basis(i: int) -> str:
    """Every fourth call on a legitimate-interest route: its callers may only object."""
    return "legitimate-interest" if i % 4 == 3 else "consent"

SVG = "{http://www.w3.org/2000/svg}"


def _calls() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Calls on days in and out of a 30-day window, its edges to the microsecond."""
    moments = [
        TODAY - timedelta(days=29),  # the window's first instant
        TODAY - timedelta(days=29, microseconds=1),  # just before it: not counted
        TODAY - timedelta(days=40),
        TODAY + timedelta(days=1) - timedelta(microseconds=1),  # today's last instant
        TODAY + timedelta(days=1),  # tomorrow (a clock ahead): not counted
        NOW,
    ] + [TODAY - timedelta(days=d, hours=h) for d in (1, 2, 5, 17) for h in (3, 7, 12)]
    calls, consents = [], []
    n = itertools.count()
    for started in moments:
        for did in ("902121112233", "2125550100", "2125550100"):
            i = next(n)
            cid = f"00000000-0000-4000-8000-{i:012d}"
            calls.append({
                "id": cid, "linkedid": f"l{i}", "channel_id": f"c{i}", "direction": "inbound",
                "caller": "+905321234567", "did": did, "extension": "101" if i % 2 else "102",
                "announcement": "before-connect", "legal_basis": _basis(i),
                "retention_class": "default", "language": "tr", "started_at": started,
            })
            decision = DECISIONS[i % len(DECISIONS)]
            if decision is not None:
                consents.append({"id": f"consent-{i}", "call_id": cid, "decision": decision,
                                 "language": "tr", "times_played": 1, "decided_at": started})
    return calls, consents


def _expected(calls: list[dict[str, Any]], consents: list[dict[str, Any]],
              scope: set[str] | None = None) -> dict[date, ConsentCount]:
    decision = {c["call_id"]: c["decision"] for c in consents}
    first = TODAY - timedelta(days=29)
    out: dict[date, ConsentCount] = {}
    for row in calls:
        if not first <= row["started_at"] < TODAY + timedelta(days=1):
            continue
        if scope is not None and row["extension"] not in scope:
            continue
        d = decision.get(row["id"])
        # Only consent routes ask for consent: elsewhere nothing is asked or granted.
        on_consent = row["legal_basis"] == "consent"
        count = ConsentCount(
            1, int(on_consent and d in ("granted", "declined", "timeout", "withdrawn")),
            int(on_consent and d == "granted"))
        day = row["started_at"].date()
        out[day] = out.get(day, ConsentCount()) + count
    return out


async def _load(session: AsyncSession) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls, consents = _calls()
    await session.execute(insert(Call), calls)
    await session.execute(insert(Consent), consents)
    recordings = [
        {"id": f"rec-{i}", "call_id": calls[i]["id"], "kind": "conversation", "status": status,
         "asterisk_name": f"a-{i}", "legal_basis": "consent", "retention_class": "default",
         "retention_days": 30, "format": "wav", "layout": "mixed", "started_at": NOW}
        for i, status in enumerate(["stored"] * 5 + ["prepared", "deleted", "failed"])
    ]
    await session.execute(insert(Recording), recordings)
    copies = [("local", "verified"), ("local", "pending"), ("s3", "pending"), ("s3", "pending"),
              ("s3", "dead"), ("ftp", "dead"), ("local", "deleted")]
    await session.execute(insert(RecordingCopy), [
        {"id": f"copy-{i}", "recording_id": f"rec-{i}", "backend": backend, "key": f"k{i}",
         "status": status} for i, (backend, status) in enumerate(copies)
    ])
    requests = [("DSAR-1", "open", -3), ("DSAR-2", "in-progress", 2), ("DSAR-3", "open", 20),
                ("DSAR-4", "done", -10), ("DSAR-5", "open", -1)]
    await session.execute(insert(DataSubjectRequest), [
        {"id": f"req-{ref}", "reference": ref, "subject_key": "k" * 64, "number_masked": "x",
         "type": "access", "channel": "phone", "status": status, "opened_by": "dpo",
         "received_at": NOW - timedelta(days=30), "due_at": NOW + timedelta(days=due)}
        for ref, status, due in requests
    ])
    await session.commit()
    return calls, consents


async def test_numbers_are_those_of_the_plain_definitions(session: AsyncSession) -> None:
    calls, consents = await _load(session)
    board = await dashboard(session, now=NOW, soon_days=7)
    expected = _expected(calls, consents)
    stats = board.calls
    assert [d.day for d in stats.days] == [
        (TODAY - timedelta(days=29 - i)).date() for i in range(30)
    ]
    assert {d.day: d.count for d in stats.days if d.count.calls} == expected
    assert all(d.count == ConsentCount() for d in stats.days if d.day not in expected)
    assert stats.today == expected[TODAY.date()] and stats.today.calls == 6
    assert stats.window == sum(expected.values(), ConsentCount())
    assert stats.window.calls == 3 * 15  # the edges: first instant in, the one before out
    assert [(r.did, r.count.calls) for r in stats.routes] == [
        ("2125550100", 30), ("902121112233", 15)
    ]
    assert sum((r.count for r in stats.routes), ConsentCount()) == stats.window
    rate = stats.window.consent_rate
    assert rate is not None and rate == stats.window.granted / stats.window.asked

    storage = board.storage
    assert (storage.recordings_stored, storage.copies_pending, storage.copies_dead) == (5, 3, 2)
    assert storage.by_backend == {"ftp": (0, 1), "local": (1, 0), "s3": (2, 1)}
    assert board.dsars.overdue == ["DSAR-1", "DSAR-5"]
    assert board.dsars.due_soon == ["DSAR-2"]


async def test_a_supervisor_counts_only_their_extensions(session: AsyncSession) -> None:
    calls, consents = await _load(session)
    mine = await call_stats(session, now=NOW, extensions={"101"})
    expected = _expected(calls, consents, {"101"})
    assert {d.day: d.count for d in mine.days if d.count.calls} == expected
    nothing = await call_stats(session, now=NOW, extensions=set(), days=7)
    assert nothing.window == ConsentCount() and len(nothing.days) == 7


async def test_window_bounds(session: AsyncSession) -> None:
    for days in (0, 367):
        with pytest.raises(ValueError, match="days: give 1 to 366"):
            await call_stats(session, now=NOW, days=days)


# --- charts (no I/O) ---------------------------------------------------------------------


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _bars(root: ET.Element) -> list[tuple[float, float, str]]:
    return [
        (float(rect.get("height", "")), float(rect.get("y", "")),
         rect.findtext(f"{SVG}title") or "")
        for rect in root.iter(f"{SVG}rect")
    ]


def test_bar_heights_are_proportional_and_each_bar_is_labelled() -> None:
    svg = bar_chart_svg([Bar("a", 10), Bar("b", 5), Bar("c", 0), Bar("d", None)],
                        title="Calls", description="per day", chart_id="t1",
                        fmt=lambda v: f"{v:.0f}")
    root = _parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "t1-title t1-desc"
    assert root.findtext(f"{SVG}title") == "Calls"
    assert root.findtext(f"{SVG}desc") == "per day"
    bars = _bars(root)
    heights = [h for h, _, _ in bars]
    assert heights[0] > 0 and heights[1] == pytest.approx(heights[0] / 2)
    assert heights[2] == heights[3] == 0
    assert all(y + h == pytest.approx(bars[0][0] + bars[0][1]) for h, y, _ in bars)  # one baseline
    assert [t for _, _, t in bars] == ["a: 10", "b: 5", "c: 0", "d: no data"]
    assert root.find(f"{SVG}script") is None and "script" not in svg


def test_rates_use_a_fixed_scale_and_days_nobody_was_asked_have_no_bar() -> None:
    days = [DayCount(date(2026, 11, 29), ConsentCount(10, 4, 1)),
            DayCount(date(2026, 11, 30), ConsentCount(10, 4, 4)),
            DayCount(date(2026, 12, 1), ConsentCount(3, 0, 0))]
    title = "Onay oran\u0131"  # Turkish: the reader's language comes in from the caller
    root = _parse(consent_rate_per_day_svg(days, title=title, description="g\u00fcnl\u00fck"))
    bars = _bars(root)
    full = bars[1][0]
    assert bars[0][0] == pytest.approx(full / 4)  # 25 % of a full (100 %) bar
    assert [t for _, _, t in bars] == ["2026-11-29: 25%", "2026-11-30: 100%", "2026-12-01: -"]
    assert bars[2][0] == 0
    assert root.findtext(f"{SVG}title") == title
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["2026-11-29", "2026-12-01"]  # first and last day under the axis


def test_calls_chart_and_text_is_escaped() -> None:
    days = [DayCount(date(2026, 12, 1), ConsentCount(7, 0, 0))]
    svg = calls_per_day_svg(days, title="<script>alert(1)</script>", description='a "b" & c')
    root = _parse(svg)
    assert root.findtext(f"{SVG}title") == "<script>alert(1)</script>"  # as text
    assert "<script>" not in svg
    assert _bars(root)[0][2] == "2026-12-01: 7"
    with pytest.raises(ValueError, match="chart_id"):
        bar_chart_svg([], title="x", description="y", chart_id='a" onload="x')
    assert _bars(_parse(bar_chart_svg([], title="x", description="y", chart_id="e"))) == []
