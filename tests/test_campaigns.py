"""Campaigns: the policy's combination of a campaign's mode with the extension's (pure),
the campaign registry and ``pbx-bridge campaign`` (checked, audited), ``calls list
--campaign``, and a call the dialplan tagged (``PBX_BRIDGE_CAMPAIGN``) through the real
flow and the fake Asterisk: recorded per the campaign, kept per its class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import clean_pbx_env, cli, migrated_config
from database_fixtures import db_url, migrated_url, pg_database, sessions
from fake_ari import Caller
from flow_rig import FlowRig
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_flow_branches import rig, talk_then_caller_hangs_up

from pbx_bridge.calls.campaigns import (
    InvalidCampaign,
    UnknownCampaign,
    delete_campaign,
    get_campaign,
    list_campaigns,
    set_campaign,
)
from pbx_bridge.calls.extensions import ExtensionInfo
from pbx_bridge.calls.models import Call
from pbx_bridge.calls.retention import UnknownRetentionClass, set_class
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.calls.search import CallFilter, CursorSigner, search_calls
from pbx_bridge.config import Announcement, Language, LegalBasis, RecordingMode, TimeoutRule
from pbx_bridge.flow.campaign import call_retention_class, campaign_tag
from pbx_bridge.flow.policy import campaign_mode
from storage.models import AuditEntry

__all__ = ["clean_pbx_env", "db_url", "migrated_url", "pg_database", "rig", "sessions"]

A, D, N = RecordingMode.ALWAYS, RecordingMode.ON_DEMAND, RecordingMode.NEVER


def test_either_the_campaign_or_the_extension_can_forbid() -> None:
    assert [campaign_mode(ext, None) for ext in (A, D, N)] == [A, D, N]
    table = {(ext, camp): campaign_mode(ext, camp) for ext in (A, D, N) for camp in (A, D, N)}
    assert table == {
        (A, A): A, (A, D): D, (A, N): N,
        (D, A): D, (D, D): D, (D, N): N,
        (N, A): N, (N, D): N, (N, N): N,
    }


def test_the_campaigns_class_keeps_its_calls_apart() -> None:
    route = ResolvedRoute(
        did="2125550100", target="100", announcement=Announcement.BEFORE_CONNECT,
        language=Language.TR, legal_basis=LegalBasis.CONSENT,
        timeout_means=TimeoutRule.DECLINED, prompt_timeout_s=8, retention_class="route",
        is_default=False,
    )
    own = ExtensionInfo("100", RecordingMode.ALWAYS, "desk")
    assert call_retention_class(route, own, "sales") == "sales"
    assert call_retention_class(route, own, None) == "desk"
    assert call_retention_class(route, None, None) == "route"
    assert campaign_tag(" sales ", "c1") == "sales"
    assert campaign_tag("", "c1") is None
    assert campaign_tag("Sales Team; DROP", "c1") is None  # not a name: no campaign


async def test_campaigns_are_checked_and_audited(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await set_class(session, "sales", 365)
        made = await set_campaign(session, "spring-sale", recording=D,
                                  retention_class="sales", actor="user:ayse")
        assert (made.recording, made.retention_class) == (D, "sales")
        kept = await set_campaign(session, "spring-sale", recording=N, actor="user:ayse")
        assert kept.retention_class == "sales"  # left out: kept
        with pytest.raises(UnknownRetentionClass):
            await set_campaign(session, "spring-sale", retention_class="forever")
        with pytest.raises(InvalidCampaign) as bad:
            await set_campaign(session, "Spring Sale")
        assert bad.value.field == "name"
        await session.commit()
        assert [c.to_json() for c in await list_campaigns(session)] == [
            {"name": "spring-sale", "recording": "never", "retention_class": "sales"}]
        await delete_campaign(session, "spring-sale", actor="user:ayse")
        with pytest.raises(UnknownCampaign):
            await delete_campaign(session, "spring-sale")
        await session.commit()
        assert await get_campaign(session, "spring-sale") is None
        entries = (await session.scalars(select(AuditEntry).where(
            AuditEntry.target == "campaign:spring-sale").order_by(AuditEntry.seq))).all()
    assert [(e.actor, e.action) for e in entries] == [
        ("user:ayse", "campaign.created"), ("user:ayse", "campaign.changed"),
        ("user:ayse", "campaign.deleted")]
    assert json.loads(entries[1].details)["changes"] == {
        "recording": {"from": "on-demand", "to": "never"}}


def test_the_campaign_commands(tmp_path: Path) -> None:
    config = migrated_config(tmp_path)
    assert cli(config, "retention", "set", "sales", "365").exit_code == 0
    made = cli(config, "campaign", "set", "spring-sale", "--recording", "on-demand",
               "--retention-class", "sales")
    assert made.exit_code == 0, made.output
    assert "campaign spring-sale: recording on-demand, retention sales" in made.stdout
    listed = json.loads(cli(config, "campaign", "list", "--json").stdout)
    assert listed == [{"name": "spring-sale", "recording": "on-demand",
                       "retention_class": "sales"}]
    assert "spring-sale" in cli(config, "campaign", "list").stdout
    for args, says in ((["--recording", "sometimes"], "invalid recording mode 'sometimes'"),
                       (["--retention-class", "forever"], "unknown retention class"),
                       ([], None)):
        result = cli(config, "campaign", "set", "Bad Name" if says is None else "x", *args)
        assert result.exit_code == 2, (args, result.output)
        assert (says or "invalid campaign name") in result.output
    assert cli(config, "campaign", "delete", "spring-sale").exit_code == 0
    gone = cli(config, "campaign", "delete", "spring-sale")
    assert gone.exit_code == 2 and "unknown campaign 'spring-sale'" in gone.output


async def test_calls_are_found_by_their_campaign(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        for n, campaign in enumerate(("sales", None, "sales", "collections")):
            session.add(Call(direction="inbound", caller="05321234567", did="2125550100",
                             extension="100", announcement="none", legal_basis="consent",
                             retention_class="default", language="tr", channel_id=f"ch{n}",
                             linkedid=f"l{n}", campaign=campaign))
        await session.commit()
        page = await search_calls(session, CallFilter(campaign="sales"),
                                  signer=CursorSigner(lambda: b"k" * 32))
    assert [c.campaign for c in page.calls] == ["sales", "sales"]
    assert all(c.to_json()["campaign"] == "sales" for c in page.calls)


async def _campaign(rig: FlowRig, name: str, mode: RecordingMode, retention: str | None
                    ) -> None:
    async with rig.sessions() as session:
        if retention is not None:
            await set_class(session, retention, 365)
        await set_campaign(session, name, recording=mode, retention_class=retention)
        await session.commit()


async def test_a_tagged_call_is_recorded_and_kept_per_its_campaign(rig: FlowRig) -> None:
    await _campaign(rig, "spring-sale", A, "sales")
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")], campaign="spring-sale"))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()
    assert ended.call.campaign == "spring-sale" and ended.call.retention_class == "sales"
    (conversation,) = ended.of_kind("conversation")
    assert (conversation.retention_class, conversation.retention_days) == ("sales", 365)


async def test_a_never_campaign_is_not_recorded_though_the_caller_consents(
    rig: FlowRig,
) -> None:
    await _campaign(rig, "survey", N, None)
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")], campaign="survey"))
    await talk_then_caller_hangs_up(rig, caller, recorded=False)
    ended = await rig.ended_call()
    assert ended.call.campaign == "survey" and ended.call.retention_class == "default"
    assert ended.of_kind("conversation") == []


async def test_a_tag_naming_no_campaign_is_kept_and_asks_nothing(rig: FlowRig) -> None:
    caller = rig.asterisk.call_in(Caller(keys=[("disclosure", "1")], campaign="typo"))
    await talk_then_caller_hangs_up(rig, caller, recorded=True)
    ended = await rig.ended_call()
    assert ended.call.campaign == "typo"
    assert len(ended.of_kind("conversation")) == 1
