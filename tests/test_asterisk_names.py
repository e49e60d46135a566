"""The ids we give Asterisk's objects: each built by one function and read back by parse.

A restarted service has only these names to tell its own bridges, agent legs and snoops
from anyone else's and to lead a stereo leg's snoop back to its recording, so each kind
must parse back to itself and never be taken for another kind.
"""

from __future__ import annotations

import pytest

from pbx_bridge.flow import names
from pbx_bridge.flow.names import AsteriskName, Kind
from storage.legs import Leg, base_name, leg_name, recording_name

CALL = "0b6f5a7e-1d2c-4c3b-9a8f-7e6d5c4b3a21"
REC = "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d"


def test_a_bridge_is_named_after_its_call_and_leads_back_to_it() -> None:
    bridge = names.bridge_id(CALL)
    assert bridge == f"pbxb-call-{CALL}"
    assert names.parse(bridge) == AsteriskName(Kind.BRIDGE, CALL)
    assert names.call_of_bridge(bridge) == CALL
    assert names.call_of_bridge(names.agent_channel_id()) is None
    with pytest.raises(ValueError, match="call's id"):
        names.bridge_id("")


@pytest.mark.parametrize(
    ("make", "kind"),
    [(names.agent_channel_id, Kind.AGENT), (names.evidence_snoop_id, Kind.SNOOP),
     (names.playback_id, Kind.PLAYBACK)],
)
def test_new_ids_are_unique_and_parse_as_their_kind(make: object, kind: Kind) -> None:
    assert callable(make)
    first, second = make(), make()
    assert first != second
    parsed = names.parse(first)
    assert parsed is not None and parsed.kind is kind and parsed.recording is None
    assert names.is_kind(first, kind)


def test_a_stereo_legs_snoop_leads_back_to_its_recording() -> None:
    recording = recording_name(REC)
    assert recording == f"pbxb-{REC}"
    leg = leg_name(recording, Leg.AGENT)
    snoop = names.leg_snoop_id(leg)
    assert snoop == f"pbxb-snoop-pbxb-{REC}-agent"
    parsed = names.parse(snoop)
    assert parsed == AsteriskName(Kind.SNOOP, leg)
    assert parsed.recording == recording == base_name(leg)
    with pytest.raises(ValueError, match="not one of our recordings"):
        names.leg_snoop_id("someone-elses-recording")


def test_recordings_parse_as_recordings_legs_included() -> None:
    recording = recording_name(REC)
    assert names.parse(recording) == AsteriskName(Kind.RECORDING, recording)
    legged = names.parse(leg_name(recording, Leg.CALLER))
    assert legged is not None and legged.kind is Kind.RECORDING
    assert legged.recording == recording


@pytest.mark.parametrize(
    "foreign", ["1764580000.42", "PJSIP/100-00000001", "pbxb-", "", "pbxb-call-", "mypbxb-x"]
)
def test_anyone_elses_ids_are_not_ours(foreign: str) -> None:
    assert names.parse(foreign) is None
    assert not names.is_our_leg(foreign)
    assert names.call_of_bridge(foreign) is None


def test_only_agent_legs_and_snoops_are_legs_to_clear() -> None:
    assert names.is_our_leg(names.agent_channel_id())
    assert names.is_our_leg(names.evidence_snoop_id())
    assert names.is_our_leg(names.leg_snoop_id(recording_name(REC)))
    assert not names.is_our_leg(names.bridge_id(CALL))
    assert not names.is_our_leg(names.playback_id())
    assert not names.is_our_leg(recording_name(REC))
