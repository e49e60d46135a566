"""A scripted fake Asterisk for the call flow's unit tests.

``FakeAsterisk`` implements the flow's ``CallControl`` protocol (the REST requests it
makes) and is the event stream the real ``StasisApp`` reads: it answers each request as
Asterisk would and sends the events Asterisk would send (StasisStart of a created leg or
snoop, PlaybackStarted/Finished, RecordingStarted/Finished, Dial, the hangup events),
in process and at once, so a whole call runs in milliseconds through the real flow code,
with a real database and the real storage pipeline behind it.

What a caller and each extension do is scripted: a ``Caller`` presses keys when a
prompt begins (or right after being answered, before the disclosure: early keys), hangs
up when a prompt begins, or stays silent; an extension answers, is busy, does not answer
or is unreachable. The test can also act mid-call (``press``, ``hang_up``) once the flow
has reached a point (``until``). Afterwards it reads what happened: the requests in
order (``requests``), the prompts each channel heard (``heard``), the recordings made
(``recorded``), and the database.

A finished recording is written to ``recordings`` (a ``DirSource``, Asterisk's stored
recordings as the pipeline fetches them), so the pipeline stores it as it would a real
one. The real Asterisk stays for what only it can prove (audio, timing, SIP).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from storage_fakes import DirSource, wav_bytes

from pbx_bridge.ari import (
    Application,
    AriConflict,
    AriNotFound,
    Bridge,
    CallerId,
    Channel,
    LiveRecording,
    Playback,
    StreamConnected,
)
from pbx_bridge.ari import events as ev
from pbx_bridge.ari.rest import IfExists, SpyDirection
from pbx_bridge.ari.stream import StreamItem

APP = "pbx-bridge"
CALLER_NUMBER = "05321234567"

# "ring": rings until the test picks it up (``pick_up``) or someone hangs it up.
AgentBehaviour = Literal["answer", "busy", "no-answer", "unreachable", "ring"]


@dataclass
class Parties:
    """Whose departure ends a call, for an inbox tested on its own."""

    caller_id: str = "caller"
    connected_agent_id: str | None = None


@dataclass
class Caller:
    """What the caller does. ``keys``: (prompt name, digit) pairs, each pressed once when
    that prompt begins to play to the caller, in order; ``early``: digits pressed as soon
    as the caller is answered (before any prompt began); ``hang_up_at``: the prompt whose
    start makes the caller hang up."""

    number: str = CALLER_NUMBER
    did: str = "2125550100"
    keys: list[tuple[str, str]] = field(default_factory=list)
    early: tuple[str, ...] = ()
    hang_up_at: str | None = None
    answered: bool = False  # answered in the dialplan before Stasis (state Up)
    campaign: str = ""  # the dialplan's PBX_BRIDGE_CAMPAIGN (empty: unset)


@dataclass(frozen=True)
class Request:
    """One REST request the flow made: the method's name, what it acted on, details."""

    method: str
    target: str
    detail: str = ""


@dataclass(frozen=True)
class Heard:
    prompt: str  # the prompt's name (the media's last segment), or the tone
    how: str  # "whole" or "interrupted"


@dataclass
class _Recording:
    name: str
    target_uri: str
    stopped: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


# A composed prompt (several media in one playback) by the segment it starts with.
_COMPOSED_BY_FIRST = {"disclosure-intro": "disclosure", "language-choice": "language-choice"}


def _prompt_of(media: str) -> str:
    """The prompt's name; a composed one's (pbx_bridge/flow/announcement.py): the
    disclosure, the notice (``notice-<basis>`` first), the full notice (the disclosure's
    parts without keys), the language menu."""
    names = [m.rsplit("/", 1)[-1] for m in media.split(",")]
    if len(names) == 1:
        return names[0]
    if names[0].startswith("notice-"):
        return "notice"
    if names[0] == "disclosure-intro" and not any(n.startswith("choices-") for n in names):
        return "full-notice"
    return _COMPOSED_BY_FIRST.get(names[0], names[0])


def segments_of(media: str) -> list[str]:
    """Each sound a playback plays, ``language/name``, in order."""
    return [m.removeprefix("sound:").removeprefix("pbx-bridge/") for m in media.split(",")]


class FakeAsterisk:
    """Asterisk for one or more scripted calls; see the module's docstring."""

    def __init__(
        self,
        recordings: DirSource,
        *,
        agents: dict[str, AgentBehaviour] | None = None,
        prompt_s: float = 0.01,
    ) -> None:
        self.recordings = recordings
        self.agents: dict[str, AgentBehaviour] = dict(agents or {"100": "answer"})
        self.prompt_s = prompt_s  # how long a prompt plays when nobody interrupts it
        self.requests: list[Request] = []
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, list[str]] = {}
        self.live: dict[str, _Recording] = {}
        self.muted: set[str] = set()  # live recordings muted (PCI pause)
        self.music: set[str] = set()  # bridges playing music on hold
        self.ringing: dict[str, Channel | None] = {}  # legs ringing ("ring"), their caller
        self.recorded: list[str] = []  # Asterisk names of the recordings made, in order
        self._heard: dict[str, list[Heard]] = {}
        # Every playback's media per channel, in order (a composed prompt lists its sounds).
        self.media: dict[str, list[str]] = {}
        self._callers: dict[str, Caller] = {}
        self._playing: dict[str, tuple[str, str, asyncio.Task[None] | None]] = {}
        self._events: asyncio.Queue[StreamItem | None] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._snooped: dict[str, str] = {}  # snoop channel -> the channel it listens to
        self._scripted_callees: list[Caller] = []  # the next dialled legs' scripts
        self._dialled: list[str] = []

    # -- the event stream the StasisApp reads ---------------------------------------------

    async def stream(self) -> AsyncIterator[StreamItem]:
        yield StreamConnected(first=True)
        while (item := await self._events.get()) is not None:
            yield item

    def close(self) -> None:
        """End the stream (the app then stops handling calls, as on a shutdown)."""
        self._events.put_nowait(None)

    def _send(self, type_: type[ev.Event], **fields: Any) -> None:
        self._events.put_nowait(
            type_(type=type_.__name__, timestamp=_now(), application=APP, asterisk_id="fake",
                  **fields)
        )

    # -- what the test does ---------------------------------------------------------------

    def call_in(self, caller: Caller) -> str:
        """A caller reaches the app from the inbound context; returns their channel id."""
        channel_id = f"1764580000.{next(self._ids)}"
        channel = self._channel(channel_id, caller.number, "Up" if caller.answered else "Ring",
                                exten=caller.did)
        self._callers[channel_id] = caller
        self._send(ev.StasisStart, channel=channel,
                   args=("inbound", caller.did, caller.campaign))
        return channel_id

    def call_out(self, number: str, agent: str = "100", *, callee: Caller | None = None) -> str:
        """The agent's phone dials ``number`` into [pbx-bridge-outbound]; returns the
        agent's channel id. ``callee`` scripts the dialled party (its keys and hangup, as
        a caller's); how it answers is ``agents[endpoint]`` (e.g. "0532...@carrier")."""
        channel_id = f"1764590000.{next(self._ids)}"
        channel = self._channel(channel_id, agent, "Ring", exten=number)
        if callee is not None:
            self._scripted_callees.append(callee)
        self._send(ev.StasisStart, channel=channel, args=("outbound", number, agent))
        return channel_id

    def callee_channels(self) -> list[str]:
        """The legs the flow dialled (callees and agents alike), in order."""
        return list(self._dialled)

    def press(self, channel_id: str, digits: str) -> None:
        for digit in digits:
            self._send(ev.ChannelDtmfReceived, channel=self.channels[channel_id], digit=digit,
                       duration_ms=100)

    def hang_up(self, channel_id: str, cause: int = 16) -> None:
        """The party on ``channel_id`` hangs up (as a SIP BYE would)."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        self._send(ev.ChannelHangupRequest, channel=channel, cause=cause)
        self._destroy(channel_id, cause)

    def pick_up(self, channel_id: str) -> None:
        """A ringing extension (behaviour "ring") answers."""
        caller_channel = self.ringing.pop(channel_id)
        agent = self._existing(channel_id)
        self.channels[channel_id] = self._channel(channel_id, agent.caller.number, "Up")
        self._send(ev.Dial, peer=self.channels[channel_id], caller=caller_channel,
                   dialstatus="ANSWER")

    async def until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Wait until the flow has brought Asterisk to ``condition``."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._changed.clear()
                # Woken by Asterisk's own changes; the flow's (a call adopted) are polled.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.01)

    def heard(self, channel_id: str) -> list[Heard]:
        return list(self._heard.get(channel_id, ()))

    def prompts(self, channel_id: str) -> list[str]:
        """The prompts played to the channel, in order (tones included)."""
        return [h.prompt for h in self._heard.get(channel_id, ())]

    def made(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def agent_channels(self) -> list[str]:
        return [c for c in self.channels if c.startswith("pbxb-agent-")]

    def dialled(self) -> list[str]:
        """Each dial request's extension and ring seconds, in order ("100 15s")."""
        return [r.detail for r in self.made("dial")]

    def leg_of(self, extension: str) -> str:
        """The (last) agent leg created for ``extension``."""
        legs = [c for c, ch in self.channels.items()
                if c.startswith("pbxb-agent-") and ch.caller.number == extension]
        return legs[-1]

    async def settle(self) -> None:
        """Let scheduled playbacks and events run (for assertions after a hangup)."""
        for _ in range(5):
            await asyncio.sleep(0)

    # -- CallControl: the application -----------------------------------------------------

    async def application(self) -> Application:
        self._log("application", APP)
        return Application(APP, channel_ids=tuple(self.channels),
                           bridge_ids=tuple(self.bridges))

    async def filter_events(self, disallowed: Sequence[str]) -> Application:
        self._log("filter_events", APP, ",".join(disallowed))
        return Application(APP, events_disallowed=tuple(disallowed))

    # -- CallControl: channels ------------------------------------------------------------

    async def get_channel(self, channel_id: str) -> Channel:
        self._log("get_channel", channel_id)
        return self._existing(channel_id)

    async def answer(self, channel_id: str) -> None:
        self._log("answer", channel_id)
        channel = self._existing(channel_id)
        self.channels[channel_id] = self._channel(channel_id, channel.caller.number, "Up")
        caller = self._callers.get(channel_id)
        if caller is not None and caller.early:
            self.press(channel_id, "".join(caller.early))

    async def ring(self, channel_id: str) -> None:
        self._log("ring", channel_id)
        self._existing(channel_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self._log("hangup", channel_id, "" if reason == "normal" else reason)
        self._existing(channel_id)
        self._destroy(channel_id, 16)

    async def play(self, channel_id: str, media: str, *, playback_id: str) -> Playback:
        self._log("play", channel_id, _prompt_of(media))
        self.media.setdefault(channel_id, []).append(media)
        self._existing(channel_id)
        playback = Playback(playback_id, media_uri=media, target_uri=f"channel:{channel_id}",
                            state="queued")
        tone = media.startswith("tone:")
        self._playing[playback_id] = (channel_id, _prompt_of(media), None)
        task = asyncio.create_task(self._run_playback(playback, channel_id, tone))
        self._playing[playback_id] = (channel_id, _prompt_of(media), task)
        return playback

    async def record(
        self, channel_id: str, name: str, *, format: str = "wav", if_exists: IfExists = "fail"
    ) -> LiveRecording:
        self._log("record", channel_id, name)
        self._existing(channel_id)
        return self._start_recording(name, f"channel:{channel_id}")

    async def snoop(
        self, channel_id: str, *, spy: SpyDirection = "both", app: str, app_args: str = "",
        snoop_id: str | None = None,
    ) -> Channel:
        self._log("snoop", channel_id, spy)
        self._existing(channel_id)
        snoop_id = snoop_id or f"snoop-{next(self._ids)}"
        snoop = self._channel(snoop_id, "", "Up")
        self._snooped[snoop_id] = channel_id
        self._send(ev.StasisStart, channel=snoop, args=tuple(app_args.split(",")))
        return snoop

    async def create_channel(
        self, endpoint: str, *, app: str, app_args: str = "", channel_id: str | None = None,
        originator: str | None = None,
    ) -> Channel:
        self._log("create_channel", endpoint)
        channel_id = channel_id or f"agent-{next(self._ids)}"
        extension = endpoint.rsplit("/", 1)[-1]
        agent = self._channel(channel_id, extension, "Down")
        self._dialled.append(channel_id)
        if self._scripted_callees:
            self._callers[channel_id] = self._scripted_callees.pop(0)
        if self.agents.get(extension, "unreachable") != "unreachable":
            self._send(ev.StasisStart, channel=agent, args=tuple(app_args.split(",")))
        else:
            self._destroy(channel_id, 20)  # subscriber absent: it never enters the app
        return agent

    async def dial(
        self, channel_id: str, *, caller: str | None = None, timeout_s: int = 30
    ) -> None:
        agent = self._existing(channel_id)
        self._log("dial", channel_id, f"{agent.caller.number} {timeout_s}s")
        behaviour = self.agents.get(agent.caller.number, "unreachable")
        caller_channel = self.channels.get(caller) if caller else None
        self._send(ev.Dial, peer=agent, caller=caller_channel, dialstatus="RINGING")
        if behaviour == "ring":
            self.ringing[channel_id] = caller_channel
            self._touched()
            return
        status = {"answer": "ANSWER", "busy": "BUSY", "no-answer": "NOANSWER",
                  "unreachable": "CHANUNAVAIL"}[behaviour]
        if status == "ANSWER":
            self.channels[channel_id] = self._channel(channel_id, agent.caller.number, "Up")
        self._send(ev.Dial, peer=self.channels[channel_id], caller=caller_channel,
                   dialstatus=status)
        if status != "ANSWER":
            self._destroy(channel_id, {"BUSY": 17, "NOANSWER": 19}.get(status, 20))

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        self._log("set_variable", channel_id, f"{name}={value}")
        self._existing(channel_id)

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        self._log("get_variable", channel_id, name)
        self._existing(channel_id)
        return channel_id if name == "CHANNEL(linkedid)" else None

    async def continue_in_dialplan(self, channel_id: str) -> None:
        self._log("continue_in_dialplan", channel_id)
        channel = self._existing(channel_id)
        del self.channels[channel_id]  # back in the dialplan: no longer in our app
        self._send(ev.StasisEnd, channel=channel)
        self._touched()

    # -- CallControl: bridges -------------------------------------------------------------

    async def create_bridge(
        self, *, type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> Bridge:
        bridge_id = bridge_id or f"bridge-{next(self._ids)}"
        self._log("create_bridge", bridge_id, type)
        self.bridges[bridge_id] = []
        self._touched()
        return Bridge(bridge_id, bridge_type=type, name=name or "")

    async def get_bridge(self, bridge_id: str) -> Bridge:
        self._log("get_bridge", bridge_id)
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "GET", f"/bridges/{bridge_id}", "Bridge not found")
        return Bridge(bridge_id, channels=tuple(self.bridges[bridge_id]))

    async def add_channel(self, bridge_id: str, channel: str | Sequence[str]) -> None:
        ids = [channel] if isinstance(channel, str) else list(channel)
        self._log("add_channel", bridge_id, ",".join(ids))
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "POST", f"/bridges/{bridge_id}/addChannel", "Bridge not found")
        for channel_id in ids:
            self._existing(channel_id)
            self.bridges[bridge_id].append(channel_id)
        self._touched()

    async def remove_channel(self, bridge_id: str, channel: str | Sequence[str]) -> None:
        ids = [channel] if isinstance(channel, str) else list(channel)
        self._log("remove_channel", bridge_id, ",".join(ids))
        members = self.bridges.get(bridge_id)
        if members is None:
            raise AriNotFound(404, "POST", f"/bridges/{bridge_id}/removeChannel",
                              "Bridge not found")
        for channel_id in ids:
            if channel_id not in members:
                raise AriConflict(422, "POST", f"/bridges/{bridge_id}/removeChannel",
                                  "Channel not in bridge")
            members.remove(channel_id)
        self._touched()

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        self._log("start_bridge_moh", bridge_id, moh_class or "")
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "POST", f"/bridges/{bridge_id}/moh", "Bridge not found")
        self.music.add(bridge_id)
        self._touched()

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        self._log("stop_bridge_moh", bridge_id)
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "DELETE", f"/bridges/{bridge_id}/moh", "Bridge not found")
        self.music.discard(bridge_id)
        self._touched()

    async def destroy_bridge(self, bridge_id: str) -> None:
        self._log("destroy_bridge", bridge_id)
        if self.bridges.pop(bridge_id, None) is None:
            raise AriNotFound(404, "DELETE", f"/bridges/{bridge_id}", "Bridge not found")
        self._end_recordings_of(f"bridge:{bridge_id}")
        self._touched()

    async def record_bridge(
        self, bridge_id: str, name: str, *, format: str = "wav", if_exists: IfExists = "fail"
    ) -> LiveRecording:
        self._log("record_bridge", bridge_id, name)
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "POST", f"/bridges/{bridge_id}/record", "Bridge not found")
        return self._start_recording(name, f"bridge:{bridge_id}")

    # -- CallControl: playbacks and recordings --------------------------------------------

    async def stop_playback(self, playback_id: str) -> None:
        self._log("stop_playback", playback_id)
        playing = self._playing.pop(playback_id, None)
        if playing is None:
            raise AriNotFound(404, "DELETE", f"/playbacks/{playback_id}", "Playback not found")
        channel_id, prompt, task = playing
        if task is not None:
            task.cancel()
        self._heard.setdefault(channel_id, []).append(Heard(prompt, "interrupted"))
        self._send(ev.PlaybackFinished, playback=Playback(
            playback_id, target_uri=f"channel:{channel_id}", state="done"))
        self._touched()

    async def stop_recording(self, name: str) -> None:
        self._log("stop_recording", name)
        if name not in self.live:
            raise AriNotFound(404, "POST", f"/recordings/live/{name}/stop", "Recording not found")
        self._finish_recording(name)

    async def mute_recording(self, name: str) -> None:
        self._log("mute_recording", name)
        if name not in self.live:
            raise AriNotFound(404, "POST", f"/recordings/live/{name}/mute", "Recording not found")
        self.muted.add(name)

    async def unmute_recording(self, name: str) -> None:
        self._log("unmute_recording", name)
        if name not in self.live:
            raise AriNotFound(404, "DELETE", f"/recordings/live/{name}/mute",
                              "Recording not found")
        self.muted.discard(name)

    async def cancel_recording(self, name: str) -> None:
        self._log("cancel_recording", name)
        recording = self.live.pop(name, None)
        if recording is None:
            raise AriNotFound(404, "DELETE", f"/recordings/live/{name}", "Recording not found")
        self.recordings.live.discard(name)  # discarded: nothing is left in the folder
        self._touched()

    # -- Asterisk's side ------------------------------------------------------------------

    def _log(self, method: str, target: str, detail: str = "") -> None:
        self.requests.append(Request(method, target, detail))

    def _touched(self) -> None:
        self._changed.set()

    def _channel(self, channel_id: str, number: str, state: str, *, exten: str = "s") -> Channel:
        channel = Channel(
            id=channel_id, name=f"PJSIP/{channel_id}", state=state,
            caller=CallerId("", number), connected=CallerId("", ""), dialplan_exten=exten,
            language="tr",
        )
        self.channels[channel_id] = channel
        self._touched()
        return channel

    def _existing(self, channel_id: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise AriNotFound(404, "POST", f"/channels/{channel_id}", "Channel not found")
        return channel

    def _destroy(self, channel_id: str, cause: int) -> None:
        channel = self.channels.pop(channel_id, None)
        self.ringing.pop(channel_id, None)
        if channel is None:
            return
        for playback_id, (target, prompt, task) in list(self._playing.items()):
            if target == channel_id:
                if task is not None:
                    task.cancel()
                del self._playing[playback_id]
                self._heard.setdefault(channel_id, []).append(Heard(prompt, "interrupted"))
        self._end_recordings_of(f"channel:{channel_id}")
        self._snooped.pop(channel_id, None)
        for snoop_id, spied in list(self._snooped.items()):
            if spied == channel_id:  # a snoop ends with the channel it listens to
                self._destroy(snoop_id, cause)
        for members in self.bridges.values():
            if channel_id in members:
                members.remove(channel_id)
        self._send(ev.StasisEnd, channel=channel)
        self._send(ev.ChannelDestroyed, channel=channel, cause=cause,
                   cause_txt={16: "Normal Clearing", 17: "User busy"}.get(cause, "Other"))
        self._touched()

    async def _run_playback(self, playback: Playback, channel_id: str, tone: bool) -> None:
        prompt = _prompt_of(playback.media_uri)
        await asyncio.sleep(0)  # Asterisk starts it after answering the request
        self._send(ev.PlaybackStarted, playback=playback)
        caller = self._callers.get(channel_id)
        if caller is not None:
            if caller.hang_up_at == prompt:
                caller.hang_up_at = None
                self.hang_up(channel_id)
                return
            if caller.keys and caller.keys[0][0] == prompt:
                _, digit = caller.keys.pop(0)
                self.press(channel_id, digit)
        self._touched()
        if tone:
            return  # a tone plays until it is stopped
        await asyncio.sleep(self.prompt_s)
        if self._playing.pop(playback.id, None) is None:
            return
        self._heard.setdefault(channel_id, []).append(Heard(prompt, "whole"))
        self._send(ev.PlaybackFinished, playback=Playback(
            playback.id, target_uri=playback.target_uri, state="done"))
        self._touched()

    def _start_recording(self, name: str, target_uri: str) -> LiveRecording:
        if name in self.live:
            raise AriConflict(409, "POST", f"/recordings/live/{name}", "Recording exists")
        self.live[name] = _Recording(name, target_uri)
        self.recordings.live.add(name)  # what storage sees while it records
        self.recorded.append(name)
        live = LiveRecording(name, format="wav", state="recording", target_uri=target_uri)
        self._send(ev.RecordingStarted, recording=live)
        self._touched()
        return live

    def _finish_recording(self, name: str) -> None:
        recording = self.live.pop(name)
        self.recordings.live.discard(name)
        self.recordings.put(name, wav_bytes(0.2))  # what Asterisk leaves in its folder
        self._send(ev.RecordingFinished, recording=LiveRecording(
            name, format="wav", state="done", target_uri=recording.target_uri, duration=1))
        self._touched()

    def _end_recordings_of(self, target_uri: str) -> None:
        for name, recording in list(self.live.items()):
            if recording.target_uri == target_uri:
                self._finish_recording(name)


__all__ = ["APP", "CALLER_NUMBER", "Caller", "FakeAsterisk", "Heard", "Parties", "Request",
           "segments_of"]
