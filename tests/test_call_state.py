"""The call's state: the route snapshot an adopted call keeps, and what a call owns."""

from __future__ import annotations

from pbx_bridge.ari import CallerId, Channel
from pbx_bridge.calls.journal import OpenCall
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import Announcement, Language, LegalBasis, RouteSettings, TimeoutRule
from pbx_bridge.flow import names
from pbx_bridge.flow.call_state import (
    CallState,
    LiveRecording,
    route_snapshot,
    route_started_with,
)
from storage.legs import Layout, recording_name

ROUTE = ResolvedRoute(
    did="2125550100", target="101", announcement=Announcement.ON_CONNECT,
    language=Language.EN, legal_basis=LegalBasis.LEGITIMATE_INTEREST,
    timeout_means=TimeoutRule.HANGUP, prompt_timeout_s=5, retention_class="sales",
    is_default=False, require_jurisdiction="TR", offer_withdrawal=True,
    languages=("tr", "en"), language_keys=("1", "2"), language_by_country=True,
)
DEFAULT = RouteSettings(prompt_timeout_s=9, timeout_means=TimeoutRule.DECLINED)


def open_call(snapshot: str | None) -> OpenCall:
    return OpenCall(
        id="c1", channel_id="ch1", direction="inbound", did="2125550100", answered=True,
        consent_decision="granted", extension="102", announcement="before-connect",
        language="tr", legal_basis="consent", retention_class="default",
        route_snapshot=snapshot,
    )


def test_the_snapshot_gives_back_the_route_the_call_started_with() -> None:
    assert route_started_with(open_call(route_snapshot(ROUTE)), DEFAULT) == ROUTE


def test_a_row_without_a_snapshot_keeps_its_own_columns() -> None:
    """Calls opened before the snapshot existed: their basis, announcement, language,
    extension and class are the row's; only what the row lacks is the default's."""
    for snapshot in (None, "{not json", '{"did": "x"}'):
        route = route_started_with(open_call(snapshot), DEFAULT)
        assert route.legal_basis is LegalBasis.CONSENT
        assert route.announcement is Announcement.BEFORE_CONNECT
        assert (route.target, route.language, route.retention_class) == (
            "102", Language.TR, "default")
        assert (route.prompt_timeout_s, route.timeout_means) == (9, TimeoutRule.DECLINED)


def test_a_call_owns_its_legs_bridge_and_snoops() -> None:
    state = CallState.arriving(
        Channel("ch1", state="Ring", caller=CallerId("", "05321234567")),
        direction="inbound", did="2125550100",
    )
    assert state.owned_ids() == ("ch1",) and not state.caller_answered
    assert state.connected_agent_id is None
    state.agent_id, state.bridge_id = names.agent_channel_id(), names.bridge_id("c1")
    assert state.connected_agent_id is None  # ringing: its hangup is a dial result
    state.agent_answered = True
    assert state.connected_agent_id == state.agent_id
    state.recording = LiveRecording.of_row(recording_name("r1"), "stereo")
    assert state.recording.layout is Layout.STEREO
    assert state.recording.names == ("pbxb-r1-caller", "pbxb-r1-agent")
    assert state.owned_ids() == (
        "ch1", state.agent_id, "pbxb-call-c1", "pbxb-snoop-pbxb-r1-caller",
        "pbxb-snoop-pbxb-r1-agent")
    assert LiveRecording.of_row("pbxb-r2", "mixed") == LiveRecording(("pbxb-r2",))
