"""``pbx-bridge dsar approvals``: what waits for a second dpo, listed at the CLI against a
real SQLite database, and where to approve it (the CLI never approves: there is no
``dsar approve``; four eyes need a second dpo signed in to the console)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import (  # noqa: F401  (clean_pbx_env: autouse fixture)
    clean_pbx_env,
    cli,
    migrated_config,
)
from sqlalchemy.ext.asyncio import AsyncSession
from test_cli_dsar import INDEX, NUMBER, SECRET, in_db

from pbx_bridge.subjects.approvals import (
    ApprovalAction,
    get_approval,
    refuse,
    request_approval,
)
from pbx_bridge.subjects.register import RequestChannel, RequestType, open_request


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return migrated_config(tmp_path, "due_days = 30\n", subject_key=SECRET)


def _waiting(config: Path) -> tuple[str, str, str]:
    async def work(session: AsyncSession) -> tuple[str, str, str]:
        request = await open_request(session, INDEX, number=NUMBER, type=RequestType.ERASURE,
                                     channel=RequestChannel.EMAIL, actor="user:deniz",
                                     due_days=30)
        erasure = await request_approval(session, ApprovalAction.DSAR_RUN, actor="user:deniz",
                                         user_id="u-deniz", request_id=request.id)
        grant = await request_approval(
            session, ApprovalAction.USERS_GRANT, actor="user:ayse", user_id="u-ayse",
            user_name="selim", user_change="{}", note="change user selim: extensions 100,101")
        return request.reference, erasure.id, grant.id

    return in_db(config, work)


def test_lists_what_waits_and_says_where_to_approve(config: Path) -> None:
    assert cli(config, "dsar", "approvals").output.strip() == "no approvals waiting"
    reference, erasure, grant = _waiting(config)
    listed = cli(config, "dsar", "approvals")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "WHAT", "ABOUT", "ASKED", "BY", "ASKED", "(UTC)", "STATE",
                                "DECIDED", "BY"]
    first, second = lines[1].split(), lines[2].split()
    assert first[:4] == [erasure, "dsar.run", reference, "user:deniz"]
    assert first[-2:] == ["pending", "-"]
    assert second[:5] == [grant, "users.grant", "user", "selim", "user:ayse"]
    assert NUMBER not in listed.output and "5321234567" not in listed.output
    assert ("2 waiting: approve or refuse in the console at http://127.0.0.1:8090/dsar#approvals"
            in listed.output)
    assert "the CLI does not approve" in listed.output
    # There is nothing to approve with at the CLI.
    assert cli(config, "dsar", "approve", erasure).exit_code == 2

    data = json.loads(cli(config, "dsar", "approvals", "--json").output)
    assert data["approve_at"] == "http://127.0.0.1:8090/dsar#approvals"
    assert [(a["id"], a["action"], a["state"]) for a in data["approvals"]] == [
        (erasure, "dsar.run", "pending"), (grant, "users.grant", "pending")]
    assert data["approvals"][0]["reference"] == reference
    assert data["approvals"][1]["user"] == "selim"


def test_all_shows_decided_ones_too(config: Path) -> None:
    _, erasure, grant = _waiting(config)

    async def decide(session: AsyncSession) -> None:
        await refuse(session, await get_approval(session, grant), actor="user:deniz",
                     reason="not needed")

    in_db(config, decide)
    pending = cli(config, "dsar", "approvals", "--json")
    assert [a["id"] for a in json.loads(pending.output)["approvals"]] == [erasure]
    every = json.loads(cli(config, "dsar", "approvals", "--all", "--json").output)["approvals"]
    assert [(a["id"], a["state"], a["decided_by"]) for a in every] == [
        (erasure, "pending", None), (grant, "refused", "user:deniz")]
    shown = cli(config, "dsar", "approvals", "--all").output
    assert lines_with(shown, grant)[-2:] == ["refused", "user:deniz"] and "1 waiting" in shown


def lines_with(output: str, approval_id: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line.startswith(approval_id)]
    return line.split()
