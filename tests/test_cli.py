"""The ``pbx-bridge`` admin commands against a real SQLite database and a temp config."""

from __future__ import annotations

import asyncio
import getpass
import json
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import clean_pbx_env, cli  # noqa: F401  (clean_pbx_env: autouse fixture)
from typer.testing import CliRunner

from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.calls.transfers import (
    RecordingEffect,
    TransferAttempt,
    TransferMode,
    TransferOutcome,
    store_transfer,
)
from pbx_bridge.cli.main import app
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.database import head_revision, make_engine, make_session_factory
from storage.models import Recording

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CALL_ID = "11111111-2222-3333-4444-555555555555"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/var/pbx-bridge.db"\n'
        '[default_route]\ntarget = "100"\n'
        f'[privacy]\nsubject_key_file = "{tmp_path}/subject.key"\n'
    )
    return path


@pytest.fixture
def migrated(config: Path) -> Path:
    result = cli(config, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return config


def _seed(config: Path) -> None:
    url = f"sqlite+aiosqlite:///{config.parent}/var/pbx-bridge.db"
    subjects = SubjectIndex(SubjectKeyer.load_or_create(config.parent / "subject.key"), "TR")

    async def insert() -> None:
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                session.add(
                    Call(
                        id=CALL_ID,
                        linkedid="1700000000.1",
                        channel_id="1700000000.1",
                        direction="inbound",
                        caller="+905321234567",
                        caller_key=subjects.key_of("+905321234567"),  # as the journal does
                        did="902121112233",
                        extension="101",
                        announcement="before-connect",
                        legal_basis="consent",
                        retention_class="default",
                        language="tr",
                        started_at=T0,
                        answered_at=T0 + timedelta(seconds=20),
                        ended_at=T0 + timedelta(minutes=2),
                        disposition="answered",
                    )
                )
                await session.flush()
                session.add(
                    Consent(
                        call_id=CALL_ID,
                        caller="+905321234567",
                        decision="granted",
                        digit="1",
                        language="tr",
                        prompt_name="disclosure",
                        prompt_version="v1",
                        prompt_sha256="cd" * 32,
                        times_played=1,
                        evidence_recording_id="ev-1",
                        decided_at=T0 + timedelta(seconds=12),
                    )
                )
                for rid, kind, offset in (("ev-1", "evidence", 1), ("conv-1", "conversation", 21)):
                    session.add(
                        Recording(
                            id=rid,
                            call_id=CALL_ID,
                            kind=kind,
                            status="stored",
                            asterisk_name=f"name-{rid}",
                            legal_basis="consent",
                            retention_class="default",
                            retention_days=60,
                            retain_until=T0 + timedelta(days=60),
                            format="wav",
                            sha256="ab" * 32,
                            size_bytes=32044,
                            duration_s=2.0,
                            location=f"local:2026/03/01/{rid}.wav",
                            started_at=T0 + timedelta(seconds=offset),
                        )
                    )
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(insert())


# --- database --------------------------------------------------------------------------


def test_commands_refuse_an_unmigrated_database(config: Path) -> None:
    result = cli(config, "ext", "list")
    assert result.exit_code == 1
    assert "empty" in result.stderr and "pbx-bridge db upgrade" in result.stderr
    assert "Traceback" not in result.output


def test_db_current_before_and_after_upgrade(config: Path) -> None:
    assert "empty" in cli(config, "db", "current").stdout
    assert cli(config, "db", "upgrade").exit_code == 0
    result = cli(config, "db", "current")
    assert result.exit_code == 0
    assert f"{head_revision()} (head)" in result.stdout


def test_unreachable_database_names_the_url_without_password(tmp_path: Path) -> None:
    config = tmp_path / "pg.toml"
    config.write_text('[database]\nurl = "postgresql+asyncpg://pbx:s3cret@127.0.0.1:1/pbx"\n')
    result = cli(config, "calls", "list")
    assert result.exit_code == 1
    assert "cannot connect to database postgresql+asyncpg://pbx:***@127.0.0.1:1/pbx" in (
        result.stderr
    )
    assert "s3cret" not in result.output


# --- config errors ---------------------------------------------------------------------


def test_config_with_a_bad_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[database]\nurll = "sqlite+aiosqlite:///x.db"\n')
    result = cli(config, "route", "list")
    assert result.exit_code == 2
    assert "database.urll: unknown key" in result.stderr
    assert "Traceback" not in result.output


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    result = cli(tmp_path / "nope.toml", "ext", "list")
    assert result.exit_code == 2
    assert "nope.toml: config file not found" in result.stderr


def test_config_comes_from_the_environment_variable(
    migrated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBX_BRIDGE_CONFIG", str(migrated))
    result = CliRunner().invoke(app, ["retention", "list"])
    assert result.exit_code == 0, result.output
    assert "default" in result.stdout


# --- retention, extensions, routes -----------------------------------------------------


def test_retention_set_and_list(migrated: Path) -> None:
    result = cli(migrated, "retention", "set", "sales", "365")
    assert result.exit_code == 0, result.output
    lines = cli(migrated, "retention", "list").stdout.splitlines()
    assert lines[0].split() == ["CLASS", "DAYS", "FROM"]
    assert lines[1].split() == ["default", "60", "config"]
    assert lines[2].split() == ["sales", "365", "database"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["sales", "-5"], "invalid retention period -5 days"),
        (["Sales!", "5"], "invalid retention class name 'Sales!'"),
    ],
)
def test_retention_set_rejects_bad_input(migrated: Path, args: list[str], problem: str) -> None:
    result = cli(migrated, "retention", "set", *args)
    assert result.exit_code == 2
    assert problem in result.stderr
    assert "Traceback" not in result.output


def test_ext_set_and_list(migrated: Path) -> None:
    assert cli(migrated, "retention", "set", "sales", "365").exit_code == 0
    result = cli(migrated, "ext", "set", "101", "--recording", "never", "--retention", "sales")
    assert result.exit_code == 0, result.output
    assert cli(migrated, "ext", "set", "102", "--recording", "on-demand").exit_code == 0
    lines = cli(migrated, "ext", "list").stdout.splitlines()
    assert lines[0].split() == ["NUMBER", "RECORDING", "INB-INT", "INB-EXT", "OUT-INT",
                                "OUT-EXT", "RETENTION"]
    assert lines[1].split() == ["101", "never", *["(never)"] * 4, "sales"]
    assert lines[2].split() == ["102", "on-demand", *["(on-demand)"] * 4, "(route's)"]


def test_ext_set_cells_per_direction_and_scope(migrated: Path) -> None:
    """Each cell is set on its own and kept by later changes; ``default`` clears it."""
    result = cli(migrated, "ext", "set", "100", "--outbound-external", "never")
    assert result.exit_code == 0, result.output
    assert "outbound-external never" in result.stdout
    assert "inbound-external (always)" in result.stdout  # a new extension records always
    ok = cli(migrated, "ext", "set", "100", "--recording", "on-demand",
             "--inbound-internal", "never")
    assert ok.exit_code == 0, ok.output
    lines = cli(migrated, "ext", "list").stdout.splitlines()
    assert lines[1].split() == ["100", "on-demand", "never", "(on-demand)", "(on-demand)",
                                "never", "(route's)"]
    assert cli(migrated, "ext", "set", "100", "--outbound-external", "default").exit_code == 0
    lines = cli(migrated, "ext", "list").stdout.splitlines()
    assert lines[1].split()[5] == "(on-demand)"
    bad = cli(migrated, "ext", "set", "100", "--outbound-external", "sometimes")
    assert bad.exit_code == 2 and "--outbound-external" in bad.output
    nothing = cli(migrated, "ext", "set", "100")
    assert nothing.exit_code == 2 and "nothing to set" in nothing.output


def test_ext_set_rejects_bad_mode_and_unknown_class(migrated: Path) -> None:
    bad_mode = cli(migrated, "ext", "set", "101", "--recording", "sometimes")
    assert bad_mode.exit_code == 2
    assert "sometimes" in bad_mode.output and "--recording" in bad_mode.output
    unknown = cli(migrated, "ext", "set", "101", "--recording", "never", "--retention", "x")
    assert unknown.exit_code == 2
    assert "unknown retention class 'x'" in unknown.stderr


def test_outbound_route_set_list_delete(migrated: Path) -> None:
    made = cli(migrated, "outbound-route", "set", "+44", "--announcement", "before-connect",
               "--legal-basis", "consent", "--language", "en", "--dial", "PJSIP/{number}@uk")
    assert made.exit_code == 0, made.output
    assert cli(migrated, "outbound-route", "set", "0090").exit_code == 0
    lines = cli(migrated, "outbound-route", "list").stdout.splitlines()
    assert lines[0].split()[:3] == ["PREFIX", "ANNOUNCEMENT", "LEGAL"]
    assert lines[1].split() == ["+44", "before-connect", "consent", "default", "en",
                                "declined", "8s", "PJSIP/{number}@uk"]
    assert lines[2].split() == ["0090", "notice-only", "legitimate-interest", "default", "tr",
                                "declined", "8s", "(PJSIP/{number}@carrier)"]
    assert lines[3].split()[:3] == ["(any", "other)", "notice-only"]
    for args, problem in [
        (["set", "44x"], "invalid outbound prefix '44x'"),
        (["set", "+44", "--announcement", "on-connect"], "on-connect on an outbound route"),
        (["set", "+44", "--announcement", "notice-only"], "nobody is asked"),
        (["set", "+44", "--dial", "PJSIP/uk"], "must contain {number}"),
        (["set", "+44", "--retention", "nosuch"], "unknown retention class 'nosuch'"),
        (["delete", "+1"], "no outbound route for prefix '+1'"),
    ]:
        refused = cli(migrated, "outbound-route", *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert problem in refused.stderr and "Traceback" not in refused.output
    kept = cli(migrated, "outbound-route", "list").stdout.splitlines()
    assert kept == lines  # a refused change wrote nothing
    assert cli(migrated, "retention", "set", "calls-out", "90").exit_code == 0
    assert cli(migrated, "outbound-route", "set", "0090", "--retention", "calls-out").exit_code == 0
    in_use = cli(migrated, "retention", "delete", "calls-out")
    assert in_use.exit_code == 2 and "outbound route(s) 0090" in in_use.stderr
    assert cli(migrated, "outbound-route", "delete", "+44").exit_code == 0
    assert "+44" not in cli(migrated, "outbound-route", "list").stdout


def test_retention_delete_is_refused_while_the_default_outbound_route_or_a_campaign_uses_it(
    migrated: Path,
) -> None:
    assert cli(migrated, "retention", "set", "calls-out", "90").exit_code == 0
    plain = migrated.read_text()
    migrated.write_text(plain + '[default_outbound_route]\nretention_class = "calls-out"\n')
    in_use = cli(migrated, "retention", "delete", "calls-out")
    assert in_use.exit_code == 2, in_use.output
    assert ("retention class 'calls-out' is in use and cannot be removed: the configured "
            "default outbound route ([default_outbound_route] retention_class)") in in_use.stderr
    migrated.write_text(plain)
    assert cli(migrated, "campaign", "set", "spring-sale", "--recording", "always",
               "--retention-class", "calls-out").exit_code == 0
    by_campaign = cli(migrated, "retention", "delete", "calls-out")
    assert by_campaign.exit_code == 2 and "campaign(s) spring-sale" in by_campaign.stderr
    assert "calls-out" in cli(migrated, "retention", "list").stdout  # nothing removed
    assert cli(migrated, "campaign", "delete", "spring-sale").exit_code == 0
    assert cli(migrated, "retention", "delete", "calls-out").exit_code == 0
    assert "calls-out" not in cli(migrated, "retention", "list").stdout


def test_route_set_and_list(migrated: Path) -> None:
    assert cli(migrated, "retention", "set", "support", "180").exit_code == 0
    result = cli(
        migrated,
        "route",
        "set",
        "902121112233",
        "--target",
        "101",
        "--announcement",
        "on-connect",
        "--legal-basis",
        "legitimate-interest",
        "--retention",
        "support",
        "--language",
        "en",
        "--timeout-means",
        "hangup",
        "--prompt-timeout",
        "12",
    )
    assert result.exit_code == 0, result.output
    # A partial update keeps the other fields.
    assert cli(migrated, "route", "set", "902121112233", "--target", "102").exit_code == 0
    lines = cli(migrated, "route", "list").stdout.splitlines()
    assert lines[1].split() == [
        "902121112233",
        "102",
        "on-connect",
        "legitimate-interest",
        "support",
        "en",
        "hangup",
        "12s",
        "-",  # no jurisdiction requirement
    ]
    assert lines[2].split()[:3] == ["(any", "other)", "100"]


def test_route_set_with_unknown_retention_class(migrated: Path) -> None:
    result = cli(migrated, "route", "set", "123", "--retention", "nosuch")
    assert result.exit_code == 2
    assert "unknown retention class 'nosuch'" in result.stderr
    assert "Traceback" not in result.output
    # Nothing was stored: the header and the default line only.
    assert len(cli(migrated, "route", "list").stdout.splitlines()) == 2


def test_route_set_with_bad_language(migrated: Path) -> None:
    result = cli(migrated, "route", "set", "123", "--language", "de")
    assert result.exit_code == 2
    assert "--language" in result.output


# --- history ---------------------------------------------------------------------------


def test_calls_show_lists_who_handled_the_call_and_its_transfers(migrated: Path) -> None:
    _seed(migrated)

    async def transferred() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{migrated.parent}/var/pbx-bridge.db")
        try:
            sessions = make_session_factory(engine)
            for to, outcome, at in (("105", TransferOutcome.BUSY, 30), ("102",
                                    TransferOutcome.COMPLETED, 60)):
                await store_transfer(sessions, TransferAttempt(
                    call_id=CALL_ID, mode=TransferMode.BLIND, from_extension="101",
                    to_extension=to, requested_by="agent:101",
                    requested_at=T0 + timedelta(seconds=at),
                    ended_at=T0 + timedelta(seconds=at + 5), outcome=outcome,
                    recording=RecordingEffect.CONTINUED if to == "102" else None,
                ))
        finally:
            await engine.dispose()

    asyncio.run(transferred())
    shown = cli(migrated, "calls", "show", CALL_ID)
    assert shown.exit_code == 0, shown.output
    assert "handled by:  101 -> 102" in shown.stdout
    assert "caller:      +9053***4567" in shown.stdout  # masked unless --unmasked
    rows = [line.split() for line in shown.stdout.split("transfers:")[1].splitlines()[2:]]
    assert [(r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows if r] == [
        ("blind", "101", "105", "agent:101", "busy", "-"),
        ("blind", "101", "102", "agent:101", "completed", "continued"),
    ]
    data = json.loads(cli(migrated, "calls", "show", CALL_ID, "--json").stdout)
    assert data["handled_by"] == [
        {"extension": "101", "from": "2026-03-01T09:00:20Z", "until": "2026-03-01T09:01:05Z"},
        {"extension": "102", "from": "2026-03-01T09:01:05Z", "until": "2026-03-01T09:02:00Z"},
    ]
    assert [t["outcome"] for t in data["transfers"]] == ["busy", "completed"]
    listed = json.loads(cli(migrated, "calls", "list", "--json").stdout)
    assert listed[0]["transfers"] == data["transfers"]
    missing = cli(migrated, "calls", "show", "no-such-call")
    assert missing.exit_code == 2 and "no call with id no-such-call" in missing.stderr


def test_calls_list_json_shape(migrated: Path) -> None:
    _seed(migrated)
    result = cli(migrated, "calls", "list", "--json", "--unmasked")
    assert result.exit_code == 0, result.output
    calls = json.loads(result.stdout)
    assert len(calls) == 1
    call = calls[0]
    for key in ("id", "linkedid", "direction", "caller", "did", "extension"):
        assert key in call
    assert call["id"] == CALL_ID
    assert call["caller"] == "+905321234567"
    assert call["started_at"] == "2026-03-01T09:00:00Z"
    assert call["answered_at"] == "2026-03-01T09:00:20Z"
    assert call["ended_at"] == "2026-03-01T09:02:00Z"
    assert call["disposition"] == "answered"
    consent = call["consent"]
    assert {
        "decision": "granted",
        "digit": "1",
        "prompt_version": "v1",
        "prompt_sha256": "cd" * 32,
        "at": "2026-03-01T09:00:12Z",
        "language": "tr",
        "evidence_recording_id": "ev-1",
    }.items() <= consent.items()
    assert [r["id"] for r in call["recordings"]] == ["ev-1", "conv-1"]
    recording = call["recordings"][1]
    assert {
        "kind": "conversation",
        "format": "wav",
        "duration_s": 2.0,
        "sha256": "ab" * 32,
        "retain_until": "2026-04-30T09:00:00Z",
        "location": "local:2026/03/01/conv-1.wav",
        "status": "stored",
        "legal_basis": "consent",
        "size_bytes": 32044,
    }.items() <= recording.items()


def test_numbers_are_masked_by_default(migrated: Path) -> None:
    _seed(migrated)
    for args in (
        ["calls", "list"],
        ["calls", "list", "--json"],
        ["recordings", "list"],
        ["recordings", "list", "--json"],
        ["consents", "list"],
        ["consents", "list", "--json"],
    ):
        result = cli(migrated, *args)
        assert result.exit_code == 0, result.output
        assert "+905321234567" not in result.stdout, args
        assert "+9053***4567" in result.stdout, args
    unmasked = cli(migrated, "consents", "list", "--unmasked")
    assert "+905321234567" in unmasked.stdout


def _audit(config: Path, action: str) -> list[dict[str, object]]:
    result = cli(config, "audit", "list", "--action", action, "--json")
    assert result.exit_code == 0, result.output
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


def test_unmasked_listings_are_audited_and_masked_ones_are_not(migrated: Path) -> None:
    _seed(migrated)
    for group in ("calls", "recordings", "consents"):
        assert cli(migrated, group, "list").exit_code == 0
        assert _audit(migrated, f"{group}.unmasked") == []
        result = cli(migrated, group, "list", "--unmasked", "--number", "05321234567")
        assert result.exit_code == 0, result.output
        [entry] = _audit(migrated, f"{group}.unmasked")
        assert entry["actor"] == "cli:" + getpass.getuser()
        assert entry["target"] == f"{group}:listing"
        details = entry["details"]
        assert isinstance(details, dict)
        assert details["count"] == len(details["ids"]) > 0
        assert details["filters"] == {"number": "0532***4567"}
        assert "5321234567" not in json.dumps(entry)
    [calls] = _audit(migrated, "calls.unmasked")
    assert calls["details"]["ids"] == [CALL_ID]  # type: ignore[index]


def test_calls_list_filters(migrated: Path) -> None:
    _seed(migrated)
    for number in ("05321234567", "5321234567", "+905321234567"):
        found = json.loads(cli(migrated, "calls", "list", "--json", "--number", number).stdout)
        assert [c["id"] for c in found] == [CALL_ID]
    assert json.loads(cli(migrated, "calls", "list", "--json", "--number", "0555").stdout) == []
    later = cli(migrated, "calls", "list", "--json", "--since", "2026-03-02")
    assert json.loads(later.stdout) == []
    same_day = cli(migrated, "calls", "list", "--json", "--since", "2026-03-01T08:59Z")
    assert len(json.loads(same_day.stdout)) == 1


def _seed_more(config: Path, count: int) -> None:
    """``count`` calls after the seeded one, ext 102, one a minute; even ones busy."""
    url = f"sqlite+aiosqlite:///{config.parent}/var/pbx-bridge.db"

    async def insert() -> None:
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                for i in range(count):
                    session.add(Call(
                        id=f"00000000-0000-4000-8000-{i:012d}", linkedid=f"l{i}",
                        channel_id=f"c{i}", direction="inbound", caller="100",
                        did="902121112233", extension="102", announcement="none",
                        legal_basis="consent", retention_class="default", language="tr",
                        started_at=T0 + timedelta(minutes=i + 1),
                        disposition="busy" if i % 2 == 0 else "answered",
                    ))
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(insert())


def test_calls_list_pages_by_cursor_on_stderr(migrated: Path) -> None:
    _seed(migrated)
    _seed_more(migrated, 4)
    seen: list[str] = []
    args = ["calls", "list", "--json", "--limit", "2"]
    while True:
        result = cli(migrated, *args)
        assert result.exit_code == 0, result.output
        seen.extend(c["id"] for c in json.loads(result.stdout))  # stdout: the array only
        if not result.stderr:
            break
        assert result.stderr.startswith("next page: --cursor "), result.stderr
        args = ["calls", "list", "--json", "--limit", "2",
                "--cursor", result.stderr.split()[-1]]
    assert seen[-1] == CALL_ID and len(seen) == 5 == len(set(seen))
    busy = json.loads(cli(migrated, "calls", "list", "--json", "--disposition", "busy",
                          "--extension", "102").stdout)
    assert [c["linkedid"] for c in busy] == ["l2", "l0"]
    assert json.loads(cli(migrated, "calls", "list", "--json", "--until", "2026-03-01T09:01Z",
                          "--consent", "granted").stdout)[0]["id"] == CALL_ID


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--cursor", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"], "cursor: not valid for this search"),
        (["--disposition", "hung"], "disposition: 'hung' is not one of"),
        (["--since", "2026-03-02", "--until", "2026-03-01"], "is not before until"),
        (["--until", "soon"], "--until"),
    ],
)
def test_calls_list_bad_search_is_one_line(migrated: Path, args: list[str], problem: str) -> None:
    result = cli(migrated, "calls", "list", *args)
    assert result.exit_code == 2
    assert problem in result.output
    assert "Traceback" not in result.output


def test_calls_list_table_and_bad_since(migrated: Path) -> None:
    _seed(migrated)
    lines = cli(migrated, "calls", "list").stdout.splitlines()
    assert lines[0].split()[:2] == ["STARTED", "(UTC)"]
    assert lines[1].split() == [
        "2026-03-01",
        "09:00:00",
        "+9053***4567",
        "902121112233",
        "101",
        "answered",
        "granted",
        "2",
        "-",  # a row from before references (migration 0010)
        CALL_ID,
    ]
    bad = cli(migrated, "calls", "list", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "yesterday" in bad.output and "--since" in bad.output


# --- the installed console script ------------------------------------------------------


def test_console_script_prints_one_line_errors(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "pbx-bridge"
    assert script.exists(), "pbx-bridge console script not installed: pip install -e ."
    config = tmp_path / "bad.toml"
    config.write_text("[nonsense]\nx = 1\n")

    async def run() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            str(script),
            "--config",
            str(config),
            "ext",
            "list",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        return proc.returncode or 0, err.decode()

    code, err = asyncio.run(run())
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: {config}: nonsense: unknown key "
        + ("(check the spelling against pbx-bridge.example.toml)")
    ]


# --- run -------------------------------------------------------------------------------


def test_run_refuses_an_unmigrated_database(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_ARI__PASSWORD", "secret")
    result = cli(config, "run")
    assert result.exit_code == 1
    assert "pbx-bridge db upgrade" in result.stderr
    assert "Traceback" not in result.output


def test_run_without_ari_password_is_a_config_error(migrated: Path) -> None:
    result = cli(migrated, "run")
    assert result.exit_code == 2
    assert "ari.password" in result.stderr


def test_run_with_an_unusable_spool_names_the_folder(
    migrated: Path, built_prompts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = migrated.parent / "not-a-folder"
    blocker.write_text("a file where the spool's parent should be")
    spool = blocker / "spool"
    with migrated.open("a") as config:
        config.write(f'[storage]\nspool_dir = "{spool}"\n[storage.local]\n'
                     f'path = "{migrated.parent / "recordings"}"\n'
                     f'[prompts]\nbuild_dir = "{built_prompts}"\n')
    monkeypatch.setenv("PBX_BRIDGE_ARI__PASSWORD", "secret")
    result = cli(migrated, "run")
    assert result.exit_code == 1, result.output
    assert f"error: spool folder {spool}: Not a directory" in result.stderr
    assert "Traceback" not in result.output


# --- prompts ---------------------------------------------------------------------------


def test_prompts_build_prints_the_manifest(tmp_path: Path) -> None:
    assert shutil.which("espeak-ng") and shutil.which("sox"), "make deps installs espeak-ng, sox"
    config = tmp_path / "p.toml"
    config.write_text(f'[prompts]\ndir = "{REPO / "prompts"}"\n')
    out = tmp_path / "built"
    result = cli(config, "prompts", "build", "--out", str(out))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {tuple(line.split()[:2]) for line in result.stdout.splitlines()[1:-1]}
    assert rows == {tuple(key.split("/")) for key in manifest["prompts"]}
    assert ("tr", "disclosure-intro") in rows and ("en", "disclosure-intro") in rows
    assert result.stdout.splitlines()[-1].startswith(f"built {len(rows)} prompts in {out}")


def test_prompts_build_failure_is_one_message(tmp_path: Path) -> None:
    (tmp_path / "texts" / "tr").mkdir(parents=True)
    config = tmp_path / "p.toml"
    config.write_text(f'[prompts]\ndir = "{tmp_path / "texts"}"\n')
    result = cli(config, "prompts", "build", "--out", str(tmp_path / "built"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "built").exists()
