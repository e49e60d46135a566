"""An export request answered through the real Asterisk: calls placed with sipp from one
subject's number written two ways (and from someone else), recordings kept encrypted, then
``pbx-bridge dsar open ... --type export`` and ``dsar run``: the ZIP holds exactly that
subject's recordings, decrypted, with checksums matching the stored rows."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ServiceHarness
from test_call_flow import assert_asterisk_kept_nothing

from pbx_bridge.sandbox import AsteriskSandbox, sipp

pytestmark = pytest.mark.asterisk

# One subject, two spellings; and a second subject whose recordings must stay out.
SUBJECT_NATIONAL = "05321234567"
SUBJECT_E164 = "+905321234567"
OTHER = "05559876543"
CALLS = (  # (DID, extension, caller)
    ("2125550141", "100", SUBJECT_NATIONAL),
    ("2125550142", "101", SUBJECT_E164),
    ("2125550143", "102", OTHER),
)


@pytest.fixture
def vault_service(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path
) -> Iterator[ServiceHarness]:
    """Recordings kept only on an encrypting backend, so an export must decrypt them."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    harness = ServiceHarness(
        asterisk,
        tmp_path,
        built_prompts,
        storage_config=f'targets = ["vault"]\nkeys_dir = "{keys}"\n',
        extra_config=f"""
[storage.backends.vault]
type = "local"
path = "{tmp_path / 'vault'}"
encrypt = true
jurisdiction = "TR"

[privacy]
subject_key_file = "{tmp_path / 'subject.key'}"
export_dir = "{tmp_path / 'exports'}"
export_days = 7
""",
    )
    harness.cli("db", "upgrade")
    harness.cli("keys", "generate")
    try:
        yield harness
    finally:
        harness.stop()


async def place_calls(service: ServiceHarness) -> None:
    agents = [
        await sipp.start_agent(service.asterisk.agent_ports[ext], "answer", ring_s=0.5)
        for _, ext, _ in CALLS
    ]
    results = await asyncio.gather(
        *(
            sipp.call(
                service.asterisk.sip_address, did, caller, dtmf=[(2.0, "1")], hangup_after_s=10.0
            )
            for did, _, caller in CALLS
        )
    )
    await asyncio.gather(*(agent.wait(timeout_s=30) for agent in agents))
    assert all(r.answered for r in results), results


def recordings_by_caller(calls: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for call in calls:
        for recording in call["recordings"]:
            assert recording["status"] == "stored", recording
            found.setdefault(call["caller"], {})[recording["id"]] = recording
    return found


async def test_export_holds_exactly_the_subjects_recordings(
    vault_service: ServiceHarness, tmp_path: Path
) -> None:
    service = vault_service
    for did, ext, _ in CALLS:
        service.cli("route", "set", did, "--target", ext)
    service.start()
    await place_calls(service)
    calls = await service.wait_for_calls(len(CALLS), timeout_s=90)
    assert_asterisk_kept_nothing(service)
    by_caller = recordings_by_caller(calls)
    subject = {**by_caller[SUBJECT_NATIONAL], **by_caller[SUBJECT_E164]}
    other = by_caller[OTHER]
    # Each consenting call: its conversation and the evidence clip of the disclosure.
    assert len(subject) == 4 and len(other) == 2

    # The request, with the number written a third way.
    opened = service.cli(
        "dsar", "open", "--number", "+90 532 123 45 67", "--type", "export", "--channel", "email"
    )
    match = re.match(r"(DSAR-\d{4}-\d+) opened: export request for 0532\*\*\*4567", opened.stdout)
    assert match, opened.stdout
    reference = match.group(1)

    run = service.cli("dsar", "run", reference, "--json")
    result = json.loads(run.stdout)
    zip_path = Path(result["export_path"])
    assert zip_path == tmp_path / "exports" / f"{reference}.zip"
    assert {r["id"] for r in result["recordings"]} == set(subject)

    with zipfile.ZipFile(zip_path) as archive:
        assert archive.testzip() is None
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    exported = {r["id"]: r for r in manifest["recordings"]}
    assert set(exported) == set(subject)
    for rid, entry in exported.items():
        audio = members[entry["file"]]
        assert audio.startswith(b"RIFF") and b"WAVE" in audio[:12]  # decrypted, original
        digest = hashlib.sha256(audio).hexdigest()
        assert digest == entry["sha256"] == entry["stored_sha256"] == subject[rid]["sha256"]
        assert entry["decrypted"] is True
        on_vault = [p for p in (tmp_path / "vault").rglob(f"{rid}.*") if p.is_file()]
        assert on_vault and all(p.read_bytes() != audio for p in on_vault)  # kept sealed
    for rid in other:
        assert not any(rid in name for name in members)
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == set(members) - {"manifest.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(members[name]).hexdigest()

    root = ET.fromstring(members["report.xml"])
    assert root.findtext("subject/number") == SUBJECT_E164
    assert sorted(c.findtext("caller") or "" for c in root.iterfind("calls/call")) == sorted(
        [SUBJECT_NATIONAL, SUBJECT_E164]
    )
    assert {c.findtext("decision") for c in root.iterfind("consents/consent")} == {"granted"}
    report = json.loads(members["report.json"])
    assert report["summary"]["recordings_held"] == 4

    shown = service.cli("dsar", "show", reference, "--json")
    shown_json = json.loads(shown.stdout)
    assert shown_json["status"] == "done" and shown_json["export_path"] == str(zip_path)
    assert "5321234567" not in "\n".join(
        line for line in service.log_text().splitlines() if " INFO " in line
    ), "subject's number logged unmasked at INFO"
