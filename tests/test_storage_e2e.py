"""A call through the real Asterisk ends up on the customer's real FTPS server, with its
sidecar, exactly once, even when the service is killed in the middle of the upload."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backend_servers import FtpServer
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import CALLER, DID, assert_asterisk_kept_nothing

from pbx_bridge.sandbox import AsteriskSandbox, sipp

pytest_plugins = ["backend_servers"]
pytestmark = pytest.mark.asterisk


def ftps_table(server: FtpServer) -> str:
    settings = server.settings()
    assert settings.ca_file is not None
    return f"""
[storage.backends.customer]
type = "ftps"
host = "{settings.host}"
port = {settings.port}
username = "{settings.username}"
password = "{settings.password.get_secret_value()}"
base_dir = "{settings.base_dir}"
ca_file = "{settings.ca_file}"
jurisdiction = "TR"
timeout_s = 5.0
"""


@pytest.fixture
def ftp_service(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path, ftps_server: FtpServer
) -> Iterator[ServiceHarness]:
    harness = ServiceHarness(
        asterisk, tmp_path, built_prompts,
        storage_config='targets = ["local", "customer"]\nrequire_jurisdiction = "TR"\n',
        extra_config=ftps_table(ftps_server),
    )
    harness.cli("db", "upgrade")
    try:
        yield harness
    finally:
        harness.stop()


def on_server(server: FtpServer, recording_id: str) -> list[Path]:
    return sorted(server.root.rglob(f"{recording_id}.*"))


async def place_consenting_call(service: ServiceHarness) -> None:
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    result = await sipp.call(
        service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")], hangup_after_s=12.0
    )
    await agent.wait(timeout_s=20)
    assert result.answered, result


def assert_archived(server: FtpServer, recording: dict[str, Any], call: dict[str, Any]) -> None:
    audio, sidecar = on_server(server, recording["id"])
    assert audio.suffix == ".wav" and sidecar.name == f"{recording['id']}.wav.json"
    assert hashlib.sha256(audio.read_bytes()).hexdigest() == recording["sha256"]
    facts = json.loads(sidecar.read_text(encoding="utf-8"))
    assert facts["call_id"] == call["id"]
    assert facts["recording_id"] == recording["id"]
    assert facts["caller"] == "0532***4567"  # masked by default
    assert facts["did"] == DID
    assert facts["legal_basis"] == "consent"
    assert facts["retain_until"] == recording["retain_until"].replace("Z", "+00:00")
    assert facts["audio_sha256"] == recording["sha256"]


async def test_call_is_archived_on_the_customers_ftps_server_with_its_sidecar(
    ftp_service: ServiceHarness, ftps_server: FtpServer
) -> None:
    ftp_service.start()
    await place_consenting_call(ftp_service)
    (call,) = await ftp_service.wait_for_calls(1)
    (conversation,) = recordings_of(call, "conversation")
    (evidence,) = recordings_of(call, "evidence")
    for recording in (conversation, evidence):
        assert recording["status"] == "stored"
        assert_archived(ftps_server, recording, call)
    assert_asterisk_kept_nothing(ftp_service)
    status = ftp_service.cli("storage", "status", "--json")
    assert json.loads(status.stdout)["copies"]["customer"] == {"verified": 2}


async def test_killed_mid_upload_then_restarted_stores_each_copy_once(
    ftp_service: ServiceHarness, ftps_server: FtpServer
) -> None:
    ftp_service.start(failpoints=["copy-uploaded"])
    await place_consenting_call(ftp_service)
    exit_code = await asyncio.to_thread(ftp_service.wait_exit, 30.0)
    assert exit_code == -signal.SIGKILL

    ftp_service.start()
    (call,) = await ftp_service.wait_for_calls(1)
    for recording in call["recordings"]:
        assert recording["status"] == "stored"
        assert_archived(ftps_server, recording, call)  # exactly one object and one sidecar
    assert_asterisk_kept_nothing(ftp_service)
