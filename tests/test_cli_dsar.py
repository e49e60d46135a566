"""``pbx-bridge dsar open|list|show|reject|reindex`` against a real SQLite database."""

from __future__ import annotations

import asyncio
import getpass
import json
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cli_support import (  # noqa: F401  (clean_pbx_env: autouse fixture)
    clean_pbx_env,
    cli,
    migrated_config,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import Result

from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from pbx_bridge.subjects.register import RequestChannel, RequestType, open_request
from storage.database import make_engine, make_session_factory
from storage.models import AuditEntry, Recording, Tombstone, utcnow

SECRET = bytes(range(32))
INDEX = SubjectIndex(SubjectKeyer(SECRET), "TR")
NUMBER = "+905321234567"
T = TypeVar("T")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return migrated_config(tmp_path, "due_days = 30\ndue_soon_days = 7\n", subject_key=SECRET)


def in_db(config: Path, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = make_engine(f"sqlite+aiosqlite:///{config.parent}/var/pbx-bridge.db")
        try:
            async with make_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def one_error_line(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def seed_request(
    config: Path, received: datetime, number: str = NUMBER, kind: RequestType = RequestType.ACCESS
) -> str:
    async def work(session: AsyncSession) -> str:
        request = await open_request(
            session, INDEX, number=number, type=kind, channel=RequestChannel.LETTER,
            actor="test", due_days=30, now=received,
        )
        return request.reference

    return in_db(config, work)


# --- open ---------------------------------------------------------------------------------


def test_open_prints_reference_and_due_date(config: Path) -> None:
    before = utcnow()
    result = cli(config, "dsar", "open", "--number", "0532 123 45 67", "--type", "erasure",
                 "--channel", "email", "--note", "asked by e-mail")
    assert result.exit_code == 0, result.output
    year = before.year
    assert result.stdout.startswith(
        f"DSAR-{year}-0001 opened: erasure request for 0532***4567 via email, due "
    )
    assert "(30 days)" in result.stdout
    assert "5321234567" not in result.stdout

    async def read(session: AsyncSession) -> tuple[DataSubjectRequest, list[AuditEntry]]:
        request = await session.scalar(select(DataSubjectRequest))
        assert request is not None
        return request, list((await session.scalars(select(AuditEntry))).all())

    request, audit = in_db(config, read)
    assert request.number == NUMBER
    assert request.subject_key == INDEX.key(NUMBER)  # the configured key file was used
    assert request.due_at - request.received_at == timedelta(days=30)
    assert before <= request.received_at <= utcnow()
    assert request.opened_by == f"cli:{getpass.getuser()}"
    assert request.note == "asked by e-mail"
    assert [(a.action, a.actor, a.target) for a in audit] == [
        ("dsar.opened", f"cli:{getpass.getuser()}", f"dsar:{request.id}"),
    ]


def test_open_creates_the_key_file_when_missing(tmp_path: Path) -> None:
    key = tmp_path / "fresh" / "subject.key"
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/var/pbx-bridge.db"\n'
        f'[privacy]\nsubject_key_file = "{key}"\n'
    )
    assert cli(path, "db", "upgrade").exit_code == 0
    result = cli(path, "dsar", "open", "--number", "05321234567", "--type", "access",
                 "--channel", "phone")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--number", "12345", "--type", "access", "--channel", "phone"],
         ["'12345' is not a valid phone number"]),
        (["--number", "anonymous", "--type", "access", "--channel", "phone"],
         ["'anonymous' is not a phone number"]),
        (["--number", NUMBER, "--type", "delete", "--channel", "phone"],
         ["--type 'delete'", "access, export, erasure, anonymise, withdraw, object"]),
        (["--number", NUMBER, "--type", "access", "--channel", "fax"],
         ["--channel 'fax'", "phone, email, web, letter"]),
        (["--number", NUMBER, "--type", "access", "--channel", "keypress"],
         ["--channel 'keypress'"]),
    ],
)
def test_open_refuses_bad_input_in_one_line(
    config: Path, args: list[str], fragments: list[str]
) -> None:
    one_error_line(cli(config, "dsar", "open", *args), *fragments)
    assert in_db(config, lambda s: s.scalar(select(DataSubjectRequest))) is None


def test_a_bad_key_is_one_clear_line(config: Path) -> None:
    key = config.parent / "keys" / "subject.key"
    key.chmod(0o644)
    one_error_line(
        cli(config, "dsar", "open", "--number", NUMBER, "--type", "access", "--channel", "web"),
        str(key), "group/others", "chmod 600",
    )
    key.chmod(0o600)
    key.write_text("garbage!")
    one_error_line(
        cli(config, "dsar", "open", "--number", NUMBER, "--type", "access", "--channel", "web"),
        str(key), "not valid base64",
    )


# --- list -----------------------------------------------------------------------------------


def test_list_masks_and_reports_due_states(config: Path) -> None:
    now = utcnow()
    late = seed_request(config, now - timedelta(days=40))  # due 10 days ago
    soon = seed_request(config, now - timedelta(days=25), "+49 30 12345678")  # due in 5 days
    fresh = seed_request(config, now - timedelta(days=1), "0212 555 01 00")  # due in 29 days

    table = cli(config, "dsar", "list")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["REFERENCE", "TYPE", "CHANNEL", "NUMBER"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == [late, soon, fresh]  # the one due first on top
    assert "0532***4567" in rows[late] and "overdue" in rows[late]
    assert "+4930***5678" in rows[soon] and "due-soon" in rows[soon]
    assert "0212***0100" in rows[fresh] and "on-time" in rows[fresh]
    assert "+90" not in table.stdout and "5321234567" not in table.stdout

    overdue = cli(config, "dsar", "list", "--overdue").stdout.splitlines()
    assert [line.split()[0] for line in overdue[1:]] == [late]
    due_soon = cli(config, "dsar", "list", "--due-soon").stdout.splitlines()
    assert [line.split()[0] for line in due_soon[1:]] == [late, soon]

    unmasked = json.loads(cli(config, "dsar", "list", "--json", "--unmasked").stdout)
    assert [(r["reference"], r["number"], r["due_state"]) for r in unmasked] == [
        (late, NUMBER, "overdue"), (soon, "+493012345678", "due-soon"),
        (fresh, "+902125550100", "on-time"),
    ]
    masked = json.loads(cli(config, "dsar", "list", "--json").stdout)
    assert [r["number"] for r in masked] == ["0532***4567", "+4930***5678", "0212***0100"]
    audited = json.loads(cli(config, "audit", "list", "--action", "dsar.unmasked", "--json").stdout)
    assert [(e["target"], e["details"]["count"]) for e in audited] == [("dsar:listing", 3)]


def test_list_by_status(config: Path) -> None:
    now = utcnow()
    first = seed_request(config, now)
    second = seed_request(config, now + timedelta(seconds=1))
    assert cli(config, "dsar", "reject", first, "--reason", "duplicate").exit_code == 0
    rejected = cli(config, "dsar", "list", "--status", "rejected", "--json")
    assert [r["reference"] for r in json.loads(rejected.stdout)] == [first]
    opened = cli(config, "dsar", "list", "--status", "OPEN", "--json")
    assert [r["reference"] for r in json.loads(opened.stdout)] == [second]
    one_error_line(cli(config, "dsar", "list", "--status", "closed"), "--status 'closed'")


# --- show -----------------------------------------------------------------------------------


def _seed_holdings(config: Path) -> None:
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    subject = INDEX.key(NUMBER)
    other = INDEX.key("+905329999999")

    async def work(session: AsyncSession) -> None:
        for n, (caller, key) in enumerate(
            [("05321234567", subject), ("+905321234567", subject), ("05329999999", other)]
        ):
            call_id = f"00000000-0000-0000-0000-{n:012d}"
            session.add(Call(
                id=call_id, linkedid=str(n), channel_id=f"ch-{n}", direction="inbound",
                caller=caller, caller_key=key, did="2125550100", extension="100",
                announcement="before-connect", legal_basis="consent",
                retention_class="default", language="tr",
                started_at=t0 + timedelta(hours=n), ended_at=t0 + timedelta(hours=n, minutes=2),
                disposition="answered",
            ))
            session.add(Consent(call_id=call_id, caller=caller, caller_key=key,
                                decision="granted" if n != 1 else "declined", language="tr",
                                decided_at=t0 + timedelta(hours=n)))
            for kind, status in (("conversation", "stored"), ("evidence", "deleted")):
                rid = f"{kind[:4]}0000-0000-0000-0000-{n:012d}"
                session.add(Recording(
                    id=rid, call_id=call_id, kind=kind, status=status,
                    asterisk_name=f"a-{rid}", legal_basis="consent",
                    retention_class="default", retention_days=60,
                    hold_reason="court" if n == 0 and kind == "conversation" else None,
                    started_at=t0 + timedelta(hours=n),
                ))
                if status == "deleted":
                    session.add(Tombstone(
                        recording_id=rid, call_id=call_id, kind=kind, legal_basis="consent",
                        retention_class="default", reason="retention", deleted_where="[]",
                    ))

    in_db(config, work)


def test_show_gives_the_request_its_due_state_and_the_subjects_holdings(config: Path) -> None:
    _seed_holdings(config)
    reference = seed_request(config, utcnow() - timedelta(days=31), "0532 123 45 67")
    result = cli(config, "dsar", "show", reference.lower())
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"reference:  {reference}" in out
    assert "number:     0532***4567" in out
    assert "(overdue)" in out
    assert "result: -" in out
    assert "calls:            2 (2026-03-01T09:00:00Z .. 2026-03-01T10:00:00Z)" in out
    assert "consents:         2 (declined 1, granted 1)" in out
    assert "recordings:       2 held (1 on legal hold), 2 deleted" in out
    assert "deletion records: 2" in out
    assert f"requests:         {reference} access open" in out
    assert "5321234567" not in out

    data: dict[str, Any] = json.loads(cli(config, "dsar", "show", reference, "--json").stdout)
    assert data["reference"] == reference and data["number"] == "0532***4567"
    assert data["due_state"] == "overdue" and data["status"] == "open"
    assert data["holdings"] == {
        "calls": 2, "first_call_at": "2026-03-01T09:00:00Z",
        "last_call_at": "2026-03-01T10:00:00Z", "calls_redacted": 0,
        "consents_by_decision": {"declined": 1, "granted": 1},
        "recordings_held": 2, "recordings_on_legal_hold": 1, "recordings_deleted": 2,
        "held_by_legal_basis": {"consent": 2}, "tombstones": 2,
        "requests": [f"{reference} access open"],
    }
    unmasked = json.loads(cli(config, "dsar", "show", reference, "--json", "--unmasked").stdout)
    assert unmasked["number"] == NUMBER
    shown = json.loads(cli(config, "audit", "list", "--action", "dsar.unmasked", "--json").stdout)
    assert [e["details"]["count"] for e in shown] == [1]


def test_show_prints_a_result_and_a_removed_number(config: Path) -> None:
    reference = seed_request(config, utcnow(), kind=RequestType.ERASURE)

    async def finish(session: AsyncSession) -> None:
        from pbx_bridge.subjects.register import complete, get_request, start

        request = await get_request(session, reference)
        await start(session, request, actor="test")
        await complete(session, request, actor="test",
                       result={"recordings_deleted": ["r1"], "kept": {"r2": "legal hold"}})

    in_db(config, finish)
    out = cli(config, "dsar", "show", reference, "--unmasked").stdout
    assert "number:     0532***4567 (number removed by the request)" in out
    assert "status:     done" in out and "(closed)" in out
    assert '"recordings_deleted": [\n    "r1"\n  ]' in out
    data = json.loads(cli(config, "dsar", "show", reference, "--json", "--unmasked").stdout)
    assert data["result"] == {"kept": {"r2": "legal hold"}, "recordings_deleted": ["r1"]}
    assert data["number_erased"] is True and data["number"] == "0532***4567"


def test_unknown_reference_is_one_line(config: Path) -> None:
    one_error_line(cli(config, "dsar", "show", "DSAR-2026-0042"),
                   "no data-subject request 'DSAR-2026-0042'")
    one_error_line(cli(config, "dsar", "reject", "DSAR-2026-0042", "--reason", "x"),
                   "DSAR-2026-0042")


# --- reject ---------------------------------------------------------------------------------


def test_reject_needs_a_reason_and_happens_once(config: Path) -> None:
    reference = seed_request(config, utcnow())
    missing = cli(config, "dsar", "reject", reference)
    assert missing.exit_code == 2 and "--reason" in missing.output
    one_error_line(cli(config, "dsar", "reject", reference, "--reason", "  "),
                   "a rejection needs a reason")
    done = cli(config, "dsar", "reject", reference, "--reason", "identity not proven")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == f"{reference} rejected"
    one_error_line(cli(config, "dsar", "reject", reference, "--reason", "again"),
                   "is rejected: it cannot be rejected")
    data = json.loads(cli(config, "dsar", "show", reference, "--json").stdout)
    assert data["status"] == "rejected" and data["reject_reason"] == "identity not proven"
    assert data["handled_by"] == f"cli:{getpass.getuser()}"

    actions = in_db(config, lambda s: s.scalars(select(AuditEntry.action).order_by(
        AuditEntry.seq)))
    assert list(actions) == ["dsar.opened", "dsar.rejected"]


# --- reindex --------------------------------------------------------------------------------


def test_reindex_keys_older_rows(config: Path) -> None:
    async def seed(session: AsyncSession) -> None:
        for n, caller in enumerate(["05321234567", "+905321234567", "101"]):
            session.add(Call(
                id=f"00000000-0000-0000-0000-{n:012d}", linkedid=str(n), channel_id=f"c{n}",
                direction="inbound", caller=caller, did="2125550100", extension="100",
                announcement="before-connect", legal_basis="consent",
                retention_class="default", language="tr",
            ))

    in_db(config, seed)
    first = cli(config, "dsar", "reindex", "--batch", "1")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "calls: 2 keyed, 1 without a public number",
        "consents: 0 keyed, 0 without a public number",
    ]
    keys = in_db(config, lambda s: s.scalars(select(Call.caller_key).order_by(Call.id)))
    assert list(keys) == [INDEX.key(NUMBER), INDEX.key(NUMBER), None]
    again = cli(config, "dsar", "reindex")
    assert again.stdout.splitlines()[0] == "calls: 0 keyed, 1 without a public number"
