"""Erasure, withdrawal and the do-not-record list through the real Asterisk and service.

Calls are placed with sipp; requests are opened and run with the CLI as a DPO would
(``pbx-bridge dsar open`` / ``dsar run``), while the service keeps taking calls. A
withdrawn caller's next call, from the same number written another way, must be
connected (both sides answered, media flowing both ways) and not recorded at all.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backend_servers import FtpServer
from e2e_harness import ServiceHarness, local_file, recordings_of
from test_call_flow import DID, assert_asterisk_kept_nothing, assert_intact, manifest_entry

from pbx_bridge.sandbox import AsteriskSandbox, sipp

pytest_plugins = ["backend_servers"]
pytestmark = pytest.mark.asterisk

SUBJECT_NATIONAL = "05321234567"
SUBJECT_E164 = "+905321234567"
SUBJECT_LETTER = "+90 532 123 45 67"
WITHDRAW_DID = "2125550181"
KEY_CALLER = "05551112233"
KEY_CALLER_E164 = "+905551112233"


def settled_or_deleted(call: dict[str, Any]) -> bool:
    """Like ``call_settled``, but a recording erased meanwhile is final too."""
    return call["ended_at"] is not None and all(
        r["status"] in ("stored", "failed", "deleted") for r in call["recordings"]
    )


def open_request(service: ServiceHarness, kind: str, number: str) -> str:
    opened = service.cli(
        "dsar", "open", "--number", number, "--type", kind, "--channel", "phone"
    )
    match = re.match(rf"(DSAR-\d{{4}}-\d+) opened: {kind} request for ", opened.stdout)
    assert match, opened.stdout
    return match.group(1)


def run_request(service: ServiceHarness, reference: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(service.cli("dsar", "run", reference, "--json").stdout)
    return result


def show_request(service: ServiceHarness, reference: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(service.cli("dsar", "show", reference, "--json").stdout)
    return shown


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def deleted_ids(result: dict[str, Any]) -> set[str]:
    return {e["recording_id"] for e in result["recordings"]["deleted"]}


async def consenting_call(service: ServiceHarness, did: str, caller: str) -> None:
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=0.5)
    result = await sipp.call(
        service.asterisk.sip_address, did, caller, dtmf=[(2.0, "1")], hangup_after_s=12.0
    )
    agent_result = await agent.wait(timeout_s=20)
    assert result.answered and agent_result.answered, (result, agent_result)


def _bridged_rx(stats: str) -> list[tuple[str, int]]:
    """(bridge, received RTP packets) of each bridged channel, from ``pjsip show channelstats``.

    Rows read "BridgeId ChannelId UpTime Codec  Count Lost Pct Jitter  Count ..."; a
    channel in no bridge has no first column and is left out.
    """
    found = []
    for line in stats.splitlines():
        fields = line.split()
        if len(fields) >= 9 and re.fullmatch(r"\d+:\d+:\d+", fields[2]):
            found.append((fields[0], int(fields[4])))
    return found


async def unrecorded_call_with_media(
    service: ServiceHarness, did: str, caller: str
) -> str:
    """Place a call that presses nothing; return Asterisk's channel stats mid-conversation."""
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=0.5)
    placed = await sipp.start_caller(
        service.asterisk.sip_address, did, caller, hangup_after_s=16.0
    )
    # The confirmation takes a few seconds; then the two are bridged and talking.
    await asyncio.sleep(11.0)
    stats = await asyncio.to_thread(service.asterisk.cli, "pjsip show channelstats")
    result = await placed.wait(timeout_s=40)
    agent_result = await agent.wait(timeout_s=20)
    assert result.answered and result.hangup_by == "caller", result
    assert agent_result.answered, agent_result  # connected to the department
    return stats


def assert_media_both_ways(stats: str) -> None:
    bridged = _bridged_rx(stats)
    # Caller and agent in our call's bridge, each receiving audio (20 ms packets).
    assert len(bridged) == 2, stats
    assert all(bridge.startswith("pbxb-cal") and n > 50 for bridge, n in bridged), stats


def assert_not_recorded(
    service: ServiceHarness, call: dict[str, Any], built_prompts: Path
) -> None:
    """Connected, nothing recorded (not even an evidence clip), the confirmation heard."""
    assert call["disposition"] == "answered" and call["answered_at"] is not None
    assert call["recordings"] == []
    confirmation = manifest_entry(built_prompts, "tr/do-not-record")
    consent = call["consent"]
    assert consent["decision"] == "not-asked"
    assert consent["prompt_name"] == "do-not-record"
    assert consent["prompt_version"] == confirmation["version"]
    assert consent["prompt_sha256"] == confirmation["audio_sha256"]
    assert "caller is on the do-not-record list" in service.log_text()


async def test_withdrawal_deletes_consent_recordings_and_the_next_call_is_not_recorded(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.start()
    await consenting_call(service, DID, SUBJECT_NATIONAL)
    (first,) = await service.wait_for_calls(1)
    recorded = {r["id"]: r for r in first["recordings"]}
    assert {r["kind"] for r in recorded.values()} == {"conversation", "evidence"}
    paths = [assert_intact(r) for r in recorded.values()]

    reference = open_request(service, "withdraw", SUBJECT_LETTER)
    result = run_request(service, reference)
    assert result["complete"] is True, result
    assert deleted_ids(result) == set(recorded)
    assert result["recordings"]["kept"] == []
    assert result["do_not_record"]["added_now"] is True
    assert not any(path.exists() for path in paths)
    assert show_request(service, reference)["status"] == "done"

    # The same person calls again, the number written another way.
    stats = await unrecorded_call_with_media(service, DID, SUBJECT_E164)
    calls = await service.wait_for_calls(2, settled=settled_or_deleted)
    (second,) = [c for c in calls if c["id"] != first["id"]]
    assert second["caller"] == SUBJECT_E164
    assert_not_recorded(service, second, built_prompts)
    assert_media_both_ways(stats)
    assert files_under(service.recordings_path) == []
    assert_asterisk_kept_nothing(service)


async def test_pressing_8_withdraws_at_once_and_opens_the_request(
    service: ServiceHarness, built_prompts: Path
) -> None:
    service.cli("route", "set", WITHDRAW_DID, "--offer-withdrawal")
    listed = service.cli("route", "list").stdout
    assert f"withdrawal by keypress (8) offered on: {WITHDRAW_DID}" in listed
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer", ring_s=0.5)
    result = await sipp.call(
        service.asterisk.sip_address, WITHDRAW_DID, KEY_CALLER, dtmf=[(2.0, "8")],
        hangup_after_s=24.0,
    )
    agent_result = await agent.wait(timeout_s=30)
    assert result.answered and agent_result.answered, (result, agent_result)

    (call,) = await service.wait_for_calls(1)
    consent = call["consent"]
    assert consent["decision"] == "withdrawn" and consent["digit"] == "8"
    assert consent["prompt_name"] == "disclosure"
    assert recordings_of(call, "conversation") == []  # connected unrecorded
    (evidence,) = recordings_of(call, "evidence")  # the proof of what was pressed
    assert_intact(evidence)

    (request,) = json.loads(service.cli("dsar", "list", "--json", "--unmasked").stdout)
    assert request["type"] == "withdraw" and request["channel"] == "keypress"
    assert request["opened_by"] == "caller" and request["status"] == "open"
    assert request["number"] == KEY_CALLER_E164

    # The list protects the next call at once, before anyone runs the request.
    stats = await unrecorded_call_with_media(service, DID, KEY_CALLER_E164)
    calls = await service.wait_for_calls(2, settled=settled_or_deleted)
    (second,) = [c for c in calls if c["id"] != call["id"]]
    assert_not_recorded(service, second, built_prompts)
    assert_media_both_ways(stats)

    # Running the request deletes what was recorded under consent: here the evidence clip.
    done = run_request(service, request["reference"])
    assert done["complete"] is True and deleted_ids(done) == {evidence["id"]}
    assert done["do_not_record"]["added_now"] is False
    assert done["do_not_record"]["reason"] == "withdraw"
    assert not local_file(evidence).exists()
    assert show_request(service, request["reference"])["status"] == "done"


def ftp_table(server: FtpServer) -> str:
    settings = server.settings()
    return f"""
[storage.backends.customer]
type = "ftp"
host = "{settings.host}"
port = {settings.port}
username = "{settings.username}"
password = "{settings.password.get_secret_value()}"
base_dir = "/erasure-e2e"
jurisdiction = "TR"
timeout_s = 5.0
"""


@pytest.fixture
def ftp_service(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path, ftp_server: FtpServer
) -> Iterator[ServiceHarness]:
    ftp_server.server.start()
    harness = ServiceHarness(
        asterisk, tmp_path, built_prompts,
        storage_config='targets = ["local", "customer"]\n',
        extra_config=ftp_table(ftp_server),
    )
    harness.cli("db", "upgrade")
    try:
        yield harness
    finally:
        harness.stop()


async def test_erasure_removes_files_from_local_and_ftp_and_the_number_from_the_rows(
    ftp_service: ServiceHarness, ftp_server: FtpServer
) -> None:
    service = ftp_service
    service.start()
    await consenting_call(service, DID, SUBJECT_NATIONAL)
    (call,) = await service.wait_for_calls(1)
    recorded = {r["id"]: r for r in call["recordings"]}
    assert len(recorded) == 2
    local = [assert_intact(r) for r in recorded.values()]
    on_ftp = {rid: sorted(ftp_server.root.rglob(f"{rid}.*")) for rid in recorded}
    assert all(len(found) == 2 for found in on_ftp.values()), on_ftp  # audio + sidecar

    reference = open_request(service, "erasure", SUBJECT_E164)
    result = run_request(service, reference)
    assert result["complete"] is True, result
    assert deleted_ids(result) == set(recorded)
    assert not any(path.exists() for path in local)
    assert not any(path.exists() for found in on_ftp.values() for path in found)

    (erased,) = await service.wait_for_calls(1, settled=settled_or_deleted)
    assert erased["caller"] is None
    (consent,) = json.loads(service.cli("consents", "list", "--json", "--unmasked").stdout)
    assert consent["caller"] is None and consent["decision"] == "granted"
    assert erased["disposition"] == "answered" and erased["consent"]["decision"] == "granted"
    assert all(r["status"] == "deleted" for r in erased["recordings"])
    for rid in recorded:
        shown = json.loads(service.cli("recordings", "show", rid, "--json").stdout)
        tombstone = shown["tombstone"]
        assert tombstone["reason"] == "erasure" and tombstone["note"] == reference
        places = {w["backend"] for w in tombstone["deleted_where"]}
        assert {"local", "customer"} <= places
        assert "5321234567" not in json.dumps(shown)
    request = show_request(service, reference)
    assert request["status"] == "done" and request["number_erased"] is True
    assert request["holdings"]["calls"] == 1 and request["holdings"]["calls_redacted"] == 1

    # Nothing new the second time, and the register says it is done.
    again = service.cli("dsar", "run", reference, check=False)
    assert again.returncode == 2 and "is done" in again.stderr and "dsar show" in again.stderr
    info = [line for line in service.log_text().splitlines() if " INFO " in line]
    assert not [line for line in info if "5321234567" in line]


async def test_anonymisation_deletes_the_audio_and_masks_the_number_keeping_statistics(
    service: ServiceHarness,
) -> None:
    service.start()
    await consenting_call(service, DID, SUBJECT_E164)
    (call,) = await service.wait_for_calls(1)
    recorded = {r["id"]: r for r in call["recordings"]}
    assert len(recorded) == 2  # the conversation and the evidence clip
    local = [assert_intact(r) for r in recorded.values()]

    reference = open_request(service, "anonymise", SUBJECT_NATIONAL)
    result = run_request(service, reference)
    assert result["complete"] is True, result
    assert deleted_ids(result) == set(recorded)
    assert not any(path.exists() for path in local)

    # The statistics stay: when, how long, answered, what the caller chose.
    (anonymised,) = json.loads(service.cli("calls", "list", "--json", "--unmasked").stdout)
    assert anonymised["caller"] == "0532***4567"
    assert anonymised["disposition"] == "answered"
    assert anonymised["answered_at"] == call["answered_at"]
    assert anonymised["ended_at"] == call["ended_at"]
    assert anonymised["consent"]["decision"] == "granted"
    (consent,) = json.loads(service.cli("consents", "list", "--json", "--unmasked").stdout)
    assert consent["caller"] == "0532***4567" and consent["digit"] == "1"
    for rid in recorded:
        shown = json.loads(service.cli("recordings", "show", rid, "--json").stdout)
        assert shown["tombstone"]["reason"] == "anonymisation"
    assert show_request(service, reference)["status"] == "done"

    # The subject is still found by number (through the subject key), and told the truth.
    later = open_request(service, "access", SUBJECT_E164)
    answer = run_request(service, later)
    assert answer["counts"]["calls"] == 1 and answer["counts"]["recordings_held"] == 0
    assert answer["counts"]["deletions"] == 2
    info = [line for line in service.log_text().splitlines() if " INFO " in line]
    assert not [line for line in info if "5321234567" in line]
