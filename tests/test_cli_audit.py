"""``pbx-bridge audit list|verify``, and the admin commands leaving their entries, on SQLite
and PostgreSQL through the real command line (typer's runner, the real config loader)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from audit_fixtures import SWAP_2_AND_4, tamper
from cli_support import clean_pbx_env, cli  # noqa: F401  (clean_pbx_env: autouse fixture)
from database_fixtures import db_url, pg_database
from e2e_harness import ServiceHarness, recordings_of
from test_call_flow import CALLER, DID

from pbx_bridge.calls.models import Call
from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.sandbox import sipp
from storage.audit_trail import canonical_details, entry_hash
from storage.database import make_engine, make_session_factory
from storage.models import CopyStatus, Recording, RecordingCopy

__all__ = ["db_url", "pg_database"]  # fixtures, imported for pytest

ME = cli_actor()
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CALL_ID = "11111111-2222-3333-4444-555555555555"
REC = "aaaaaaaa-0000-0000-0000-000000000001"
KEY = f"2026/03/01/{CALL_ID}/{REC}.wav"
AUDIO = bytes(range(256)) * 64


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Path:
    """A migrated database (SQLite or PostgreSQL) and a local store, as an operator has."""
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[storage]\nspool_dir = "{tmp_path}/spool"\n'
        f'[storage.local]\npath = "{tmp_path}/recordings"\n'
        '[default_route]\ntarget = "100"\n'
    )
    result = cli(path, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return path


def ok(config: Path, *args: str) -> str:
    result = cli(config, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _url(config: Path) -> str:
    found = re.search(r'url = "([^"]+)"', config.read_text())
    assert found is not None
    return found.group(1)


def _entries(config: Path, *args: str) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads(ok(config, "audit", "list", "--json", *args))
    return data


def _configure(config: Path) -> None:
    """Six changes through the admin commands: each leaves one entry."""
    ok(config, "retention", "set", "sales", "365")
    ok(config, "retention", "set", "sales", "400")
    ok(config, "ext", "set", "101", "--recording", "on-demand")
    ok(config, "route", "set", "2125550100", "--target", "101", "--retention", "sales")
    ok(config, "route", "set", "2125550100", "--legal-basis", "legitimate-interest")
    ok(config, "ext", "set", "101", "--recording", "never")


def test_admin_changes_are_listed_newest_first_with_the_operator(config: Path) -> None:
    assert ok(config, "audit", "list").splitlines() == [
        "SEQ  AT (UTC)  ACTOR  ACTION  TARGET  OUTCOME  DETAILS"
    ]
    _configure(config)
    entries = _entries(config)
    assert [(e["seq"], e["action"], e["target"]) for e in entries] == [
        (6, "extension.changed", "extension:101"),
        (5, "route.changed", "route:2125550100"),
        (4, "route.created", "route:2125550100"),
        (3, "extension.created", "extension:101"),
        (2, "retention.changed", "retention:sales"),
        (1, "retention.created", "retention:sales"),
    ]
    assert {e["actor"] for e in entries} == {ME}
    assert entries[1]["details"] == {
        "changes": {"legal_basis": {"from": "consent", "to": "legitimate-interest"}}
    }
    newest = entries[0]
    assert set(newest) == {
        "seq", "at", "actor", "action", "target", "outcome", "details", "prev_hash", "hash"
    }
    assert newest["prev_hash"] == entries[1]["hash"]
    assert str(newest["at"]).endswith("Z")

    assert [e["seq"] for e in _entries(config, "--action", "route.*")] == [5, 4]
    assert [e["seq"] for e in _entries(config, "--target", "extension:101")] == [6, 3]
    assert [e["seq"] for e in _entries(config, "--limit", "2")] == [6, 5]
    assert _entries(config, "--since", "2999-01-01") == []
    assert len(_entries(config, "--since", "2000-01-01")) == 6

    table = ok(config, "audit", "list", "--action", "retention.changed").splitlines()
    assert table[0].split() == ["SEQ", "AT", "(UTC)", "ACTOR", "ACTION", "TARGET", "OUTCOME",
                                "DETAILS"]
    assert re.match(
        rf"^2\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+{re.escape(ME)}\s+retention\.changed\s+"
        r"retention:sales\s+ok\s+\{\"changes\":\{\"days\":\{\"from\":365,\"to\":400\}\}\}$",
        table[1],
    ), table[1]

    bad = cli(config, "audit", "list", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_a_refused_change_leaves_no_entry(config: Path) -> None:
    bad = cli(config, "route", "set", "2125550100", "--retention", "nosuch")
    assert bad.exit_code == 2
    assert _entries(config) == []


def test_verify_reports_an_intact_chain_and_its_head(config: Path) -> None:
    assert ok(config, "audit", "verify").strip() == (
        f"audit trail intact: 0 entries, head seq 0 hash {'0' * 64}"
    )
    _configure(config)
    head = _entries(config, "--limit", "1")[0]["hash"]
    assert ok(config, "audit", "verify").strip() == (
        f"audit trail intact: 6 entries, head seq 6 hash {head}"
    )
    report = json.loads(ok(config, "audit", "verify", "--json"))
    assert report == {
        "ok": True, "checked": 6, "head_seq": 6, "head_hash": head, "problem": None
    }
    assert "intact" in ok(config, "audit", "verify", "--anchor", f"6:{head}")


@pytest.mark.parametrize(
    ("statements", "seq", "named"),
    [
        pytest.param(
            ("UPDATE audit_log SET actor = 'cli:nobody' WHERE seq = 3",),
            3, "entry 3 was changed", id="change",
        ),
        pytest.param(
            ("DELETE FROM audit_log WHERE seq = 3",), 3, "entry 3 removed", id="delete",
        ),
        pytest.param(
            ("DELETE FROM audit_log WHERE seq = 6",), 6, "entry 6 removed", id="delete-newest",
        ),
        pytest.param(
            SWAP_2_AND_4, 2, "entry 2 was reordered: it was written as entry 4",
            id="swap",
        ),
    ],
)
def test_verify_names_the_tampered_entry_and_fails(
    config: Path, statements: tuple[str, ...], seq: int, named: str
) -> None:
    _configure(config)
    assert cli(config, "audit", "verify").exit_code == 0
    asyncio.run(tamper(_url(config), *statements))

    result = cli(config, "audit", "verify")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: audit trail broken: {named}"), result.stderr
    assert "Traceback" not in result.output

    as_json = cli(config, "audit", "verify", "--json")
    assert as_json.exit_code == 1
    problem = json.loads(as_json.stdout)["problem"]
    assert problem["seq"] == seq
    assert named in problem["message"]


def test_verify_with_an_anchor_catches_a_consistent_rewrite(config: Path) -> None:
    _configure(config)
    newest = _entries(config, "--limit", "1")[0]
    true_head = str(newest["hash"])
    # An attacker who recomputes the hash and moves the head leaves a consistent chain.
    forged = entry_hash(
        seq=6,
        at=datetime.fromisoformat(str(newest["at"])),
        actor="cli:mallory",
        action=str(newest["action"]),
        target=str(newest["target"]),
        outcome=str(newest["outcome"]),
        details=canonical_details(cast(dict[str, object], newest["details"])),
        prev_hash=str(newest["prev_hash"]),
    )
    asyncio.run(
        tamper(
            _url(config),
            f"UPDATE audit_log SET actor = 'cli:mallory', hash = '{forged}' WHERE seq = 6",
            f"UPDATE audit_head SET hash = '{forged}'",
        )
    )
    assert cli(config, "audit", "verify").exit_code == 0
    result = cli(config, "audit", "verify", "--anchor", f"6:{true_head}")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: audit trail rewritten: entry 6 has hash {forged}, not the anchored {true_head}"
    ), result.stderr

    for bad in ("6", "x:" + "a" * 64, "0:" + "a" * 64, "6:abc"):
        refused = cli(config, "audit", "verify", "--anchor", bad)
        assert refused.exit_code == 2, bad
        assert "--anchor" in refused.output


def _seed_recording(config: Path) -> None:
    store = config.parent / "recordings" / KEY
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(AUDIO)
    digest = hashlib.sha256(AUDIO).hexdigest()

    async def insert() -> None:
        engine = make_engine(_url(config))
        try:
            async with make_session_factory(engine)() as session:
                session.add(
                    Call(
                        id=CALL_ID, linkedid="1.1", channel_id="1.1", direction="inbound",
                        caller="+905321234567", did="902121112233", extension="101",
                        announcement="before-connect", legal_basis="consent",
                        retention_class="default", language="tr", started_at=T0,
                        ended_at=T0 + timedelta(minutes=2), disposition="answered",
                    )
                )
                session.add(
                    Recording(
                        id=REC, call_id=CALL_ID, kind="conversation", status="stored",
                        asterisk_name=f"pbxb-{REC}", legal_basis="consent",
                        retention_class="default", retention_days=60,
                        retain_until=T0 + timedelta(days=60), sha256=digest,
                        size_bytes=len(AUDIO), duration_s=2.0, location=f"local:{KEY}",
                        started_at=T0,
                    )
                )
                await session.flush()
                session.add(
                    RecordingCopy(
                        recording_id=REC, backend="local", key=KEY,
                        status=CopyStatus.VERIFIED.value, sha256=digest,
                        size_bytes=len(AUDIO), location=store.as_uri(), verified_at=T0,
                    )
                )
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(insert())


def test_recording_commands_leave_their_entries(config: Path) -> None:
    _seed_recording(config)
    ok(config, "retention", "set", "legal", "3650")
    out = config.parent / "copy-05321234567.wav"
    ok(config, "recordings", "get", REC, "--out", str(out))
    ok(config, "recordings", "hold", REC, "--reason", "court file 17")
    ok(config, "recordings", "release", REC)
    ok(config, "recordings", "retain", REC, "--class", "legal")
    ok(config, "recordings", "delete", REC, "--reason", "asked by 05321234567", "--yes")
    refused = cli(config, "recordings", "hold", REC, "--reason", "too late")
    assert refused.exit_code == 2

    entries = _entries(config, "--target", f"recording:{REC}")
    assert [e["action"] for e in reversed(entries)] == [
        "recording.downloaded",
        "recording.held",
        "recording.released",
        "recording.retention_changed",
        "recording.deleted",
    ]
    assert {e["actor"] for e in entries} == {ME}
    downloaded = entries[-1]["details"]
    assert isinstance(downloaded, dict)
    assert downloaded["backend"] == "local"
    assert downloaded["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert downloaded["out"] == str(config.parent / "copy-0532***4567.wav")
    deleted = entries[0]["details"]
    assert isinstance(deleted, dict)
    assert deleted["reason"] == "manual"
    listing = ok(config, "audit", "list", "--limit", "100")
    assert "5321234567" not in listing
    assert "intact: 6 entries" in ok(config, "audit", "verify")


# -- through the real Asterisk -----------------------------------------------------------


@pytest.mark.asterisk
async def test_a_real_call_leaves_a_verifiable_trail_while_admins_write_beside_it(
    service: ServiceHarness,
) -> None:
    """The service (consent, stored) and CLI processes (extensions, deletion) append to
    one chain at once; ``audit verify`` finds it intact, then names an entry removed."""
    service.start()
    agent = await sipp.start_agent(service.asterisk.agent_ports["100"], "answer")
    call = asyncio.create_task(
        sipp.call(service.asterisk.sip_address, DID, CALLER, dtmf=[(2.0, "1")],
                  hangup_after_s=10.0)
    )
    for n in range(6):  # while the call is up: other processes appending
        await asyncio.to_thread(service.cli, "ext", "set", f"20{n}", "--recording", "always")
        await asyncio.sleep(0.5)
    assert (await call).answered
    await agent.wait(timeout_s=20)
    (record,) = await service.wait_for_calls(1)
    (conversation,) = recordings_of(record, "conversation")
    service.cli("recordings", "delete", conversation["id"], "--reason", "test", "--yes")
    service.stop()

    entries = json.loads(service.cli("audit", "list", "--json", "--limit", "100").stdout)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)
    (consent,) = by_action["consent.recorded"]
    assert (consent["actor"], consent["target"]) == ("caller", f"call:{record['id']}")
    assert consent["details"]["decision"] == "granted"
    assert consent["details"]["digit"] == "1"
    assert consent["details"]["prompt_version"]
    recorded = {f"recording:{r['id']}" for r in record["recordings"]}
    assert len(recorded) == 2  # the conversation and the consent evidence
    assert {e["target"] for e in by_action["recording.stored"]} == recorded
    (deleted,) = by_action["recording.deleted"]
    assert (deleted["actor"], deleted["target"]) == (ME, f"recording:{conversation['id']}")
    assert len(by_action["extension.created"]) == 6
    assert "5321234567" not in json.dumps(entries)

    verified = service.cli("audit", "verify")
    assert verified.stdout.startswith(f"audit trail intact: {len(entries)} entries")

    await tamper(f"sqlite+aiosqlite:///{service.workdir}/pbx-bridge.db",
                 f"DELETE FROM audit_log WHERE seq = {consent['seq']}")
    broken = service.cli("audit", "verify", check=False)
    assert broken.returncode == 1
    assert broken.stderr.startswith(
        f"error: audit trail broken: entry {consent['seq']} removed"
    ), broken.stderr


def test_an_admin_using_sudo_is_named_not_the_service_user(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "pbx-bridge")
    monkeypatch.setenv("SUDO_USER", "alice")
    ok(config, "retention", "set", "sales", "30")
    monkeypatch.delenv("SUDO_USER")
    ok(config, "retention", "set", "sales", "31")
    assert [e["actor"] for e in _entries(config)] == ["cli:pbx-bridge", "cli:alice"]
