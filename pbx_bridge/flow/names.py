"""The ids this service gives Asterisk's objects, built and read back in one place.

Every channel, bridge, snoop, playback and recording the service asks Asterisk to create
gets an id we choose (``pbxb-…``), claimed for its call before the request is sent, so
no event about it arrives unowned. The same ids are all a restarted service has to go on:
the resync finds a call's bridge by the call id in its name, tells our agent and snoop
legs from anyone else's, and keeps the snoops of a running stereo recording because
their names lead back to the recording. So the spelling lives here, as pure functions
with their inverse (``parse``), and nowhere else. Recording names are built by storage
(``storage.legs.recording_name``, which cannot import this upper layer) with the same
prefix; ``parse`` reads them too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from storage.legs import ASTERISK_NAME_PREFIX, base_name, recording_name

PREFIX = ASTERISK_NAME_PREFIX


class Kind(StrEnum):
    """What an id of ours names; the value is the word after the prefix."""

    BRIDGE = "call"  # the call's mixing bridge: pbxb-call-{call id}
    CONSULT = "consult"  # an attended transfer's agents talking: pbxb-consult-{call id}
    AGENT = "agent"  # the leg ringing the department: pbxb-agent-{uuid}
    SNOOP = "snoop"  # evidence clip or stereo leg: pbxb-snoop-{uuid | leg name}
    PLAYBACK = "play"  # a prompt or tone: pbxb-play-{uuid}
    RECORDING = "recording"  # Asterisk's recording of a row: pbxb-{recording id}[-leg]


@dataclass(frozen=True)
class AsteriskName:
    """An id of ours, read back: its kind and what follows the kind's word.

    ``key`` is the call id of a bridge, the uuid of an agent leg, playback or evidence
    snoop, the recording's name for a stereo leg's snoop, and the name itself for a
    recording.
    """

    kind: Kind
    key: str

    @property
    def recording(self) -> str | None:
        """The row's ``asterisk_name`` behind a recording or a stereo leg's snoop."""
        if self.kind is Kind.RECORDING:
            return base_name(self.key)
        if self.kind is Kind.SNOOP and self.key.startswith(PREFIX):
            return base_name(self.key)
        return None


def _word(kind: Kind) -> str:
    return f"{PREFIX}{kind.value}-"


def bridge_id(call_id: str) -> str:
    """The call's bridge is named after the call, so a restart finds it from the row."""
    if not call_id:
        raise ValueError("a bridge id needs the call's id")
    return f"{_word(Kind.BRIDGE)}{call_id}"


def consult_bridge_id(call_id: str) -> str:
    """Where the agent talks to a transfer's target, the caller held in the call's own
    bridge; named after the call, so a restart clears it as the call's leftover."""
    if not call_id:
        raise ValueError("a bridge id needs the call's id")
    return f"{_word(Kind.CONSULT)}{call_id}"


def agent_channel_id() -> str:
    """A new id for the leg that rings the department."""
    return f"{_word(Kind.AGENT)}{uuid.uuid4()}"


def evidence_snoop_id() -> str:
    """A new id for the evidence clip's snoop (it holds no name a restart needs)."""
    return f"{_word(Kind.SNOOP)}{uuid.uuid4()}"


def leg_snoop_id(leg_name: str) -> str:
    """The snoop recording one stereo leg is named after the leg, so a call adopted after
    a restart finds (and keeps) the snoops of its running recording."""
    if not leg_name.startswith(PREFIX):
        raise ValueError(f"{leg_name!r} is not one of our recordings' names")
    return f"{_word(Kind.SNOOP)}{leg_name}"


def playback_id() -> str:
    """A new id for one playback."""
    return f"{_word(Kind.PLAYBACK)}{uuid.uuid4()}"


def parse(object_id: str) -> AsteriskName | None:
    """What one of our ids names; None for anyone else's (a caller's channel, say)."""
    if not object_id.startswith(PREFIX):
        return None
    for kind in (Kind.BRIDGE, Kind.CONSULT, Kind.AGENT, Kind.SNOOP, Kind.PLAYBACK):
        word = _word(kind)
        if object_id.startswith(word):
            key = object_id[len(word):]
            return AsteriskName(kind, key) if key else None
    if len(object_id) > len(PREFIX):
        return AsteriskName(Kind.RECORDING, object_id)
    return None


def is_kind(object_id: str, kind: Kind) -> bool:
    name = parse(object_id)
    return name is not None and name.kind is kind


def call_of_bridge(object_id: str) -> str | None:
    """The call id a bridge of ours is named after; None for any other id."""
    name = parse(object_id)
    return name.key if name is not None and name.kind is Kind.BRIDGE else None


def is_our_leg(channel_id: str) -> bool:
    """An agent leg or snoop of ours: a leftover to hang up if no call owns it."""
    name = parse(channel_id)
    return name is not None and name.kind in (Kind.AGENT, Kind.SNOOP)


__all__ = [
    "PREFIX",
    "AsteriskName",
    "Kind",
    "agent_channel_id",
    "bridge_id",
    "call_of_bridge",
    "consult_bridge_id",
    "evidence_snoop_id",
    "is_kind",
    "is_our_leg",
    "leg_snoop_id",
    "parse",
    "playback_id",
    "recording_name",
]
