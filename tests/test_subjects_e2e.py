"""Subjects end to end: sipp calls through the real Asterisk, from one number written two
ways and from another number; the service keys each call and consent row, and the
register finds exactly that subject's calls."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat

import pytest
from e2e_harness import ServiceHarness, recordings_of

from pbx_bridge.sandbox import sipp
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer

pytestmark = pytest.mark.asterisk

DID = "2125550100"
NATIONAL = "05321234567"
INTERNATIONAL = "+905321234567"  # the same person, as a carrier may send it
OTHER = "05559876543"


def _rows(service: ServiceHarness, table: str) -> dict[str, str | None]:
    with sqlite3.connect(service.workdir / "pbx-bridge.db") as db:
        return dict(db.execute(f"SELECT caller, caller_key FROM {table}").fetchall())


async def test_one_subject_however_the_carrier_writes_the_number(
    service: ServiceHarness,
) -> None:
    service.start()
    # No agent answers: each caller answers the question and hangs up while it rings.
    results = await asyncio.gather(
        *(
            sipp.call(service.asterisk.sip_address, DID, number, dtmf=[(2.0, key)],
                      hangup_after_s=7.0)
            for number, key in ((NATIONAL, "1"), (INTERNATIONAL, "2"), (OTHER, "1"))
        )
    )
    for result in results:
        assert result.answered and result.hangup_by == "caller", result

    calls = await service.wait_for_calls(3)
    assert sorted(c["caller"] for c in calls) == sorted([NATIONAL, INTERNATIONAL, OTHER])
    assert all(c["consent"] is not None for c in calls), calls
    assert all(len(recordings_of(c, "evidence")) == 1 for c in calls), calls

    # The service created the subject key beside the database, readable by it alone.
    assert stat.S_IMODE(service.subject_key_path.stat().st_mode) == 0o600
    index = SubjectIndex(SubjectKeyer.load_or_create(service.subject_key_path), "TR")
    subject, other = index.subject_key("0532 123 45 67"), index.subject_key(OTHER)
    assert subject != other
    expected = {NATIONAL: subject, INTERNATIONAL: subject, OTHER: other}
    assert _rows(service, "calls") == expected
    assert _rows(service, "consents") == expected

    # The register finds the subject's two calls, whichever way the number is typed.
    opened = service.cli("dsar", "open", "--number", "+90 532 123 45 67", "--type", "access",
                         "--channel", "phone")
    reference = opened.stdout.split()[0]
    shown = json.loads(service.cli("dsar", "show", reference, "--json").stdout)
    held = shown["holdings"]
    assert held["calls"] == 2
    assert held["consents_by_decision"] == {"declined": 1, "granted": 1}
    assert held["recordings_held"] == 2  # one evidence clip per call
    assert shown["number"] == "0532***4567"

    info = "\n".join(line for line in service.log_text().splitlines() if " INFO " in line)
    assert "5321234567" not in info and "5559876543" not in info, "a number logged at INFO"
    assert "data-subject request" in service.log_text()  # the due report ran at start
