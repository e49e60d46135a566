"""Commands to a live call from the console, the API or the CLI: the PCI pause and its end,
and a transfer (as the agent's ``*8`` / ``*9``, flow/transfer.py).

A command reaches the call the way the agent's keypad does: as an item in the call's
inbox, read by the conversation loop, which runs it through the very code the agent's
``*5`` / ``*6`` run (``CallSession._agent_feature``), with the person or token that
asked as the actor of the pause. So the paused span is the same silence in the file,
the same row beside the recording, the same audit entry, the same automatic resume, and
the agent hears "recording paused" whoever asked for it.

Whether a command can be carried out is decided before anything is done
(:func:`refusal`, pure): a call that is not being recorded cannot be paused, one that is
not paused cannot be resumed; the asker is told so (409), and the agent hears nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbx_bridge.commands.queue import CommandKind, Outcome, PendingCommand, TakenCommand
from pbx_bridge.commands.taker import CommandAnswer
from pbx_bridge.flow.feature_codes import FeatureAction, FeatureKind
from pbx_bridge.flow.inbox import CallRequest

if TYPE_CHECKING:  # the session imports this module: for typing only
    from pbx_bridge.flow.recorder import ConversationRecorder
    from pbx_bridge.flow.session import CallSession

# How long a call may take to answer a command before the asker is told it failed (a
# pause is one ARI request per recorded leg and one INSERT).
ANSWER_WITHIN_S = 10.0

_ACTIONS = {
    CommandKind.PAUSE.value: FeatureAction(FeatureKind.PAUSE),
    CommandKind.RESUME.value: FeatureAction(FeatureKind.RESUME),
}
_TRANSFER_MODES = {
    "blind": FeatureKind.BLIND_TRANSFER,
    "attended": FeatureKind.ATTENDED_TRANSFER,
}
CALL_COMMAND_KINDS = frozenset({*_ACTIONS, CommandKind.TRANSFER.value})


def action_of(kind: str, arguments: Mapping[str, object]) -> FeatureAction:
    """The agent's feature code a command stands for (a transfer's extension and mode
    from its arguments, checked by the API before the command was queued)."""
    if kind == CommandKind.TRANSFER.value:
        mode = _TRANSFER_MODES.get(str(arguments.get("mode", "blind")),
                                   FeatureKind.BLIND_TRANSFER)
        return FeatureAction(mode, extension=str(arguments.get("extension", "")))
    return _ACTIONS[kind]


def transfer_answer(request: CallCommandRequest) -> Callable[[str | None], None]:
    """How a transfer by API is answered: as soon as the target rings (its outcome, which
    may be minutes away in an attended one, is the call's ``transfers``), or refused
    with the reason (no usable extension, the one already on the call)."""

    def answer(refused: str | None) -> None:
        if request.answer.done():
            return
        if refused is not None:
            request.answer.set_result(CommandAnswer(Outcome.REFUSED, error=refused))
            return
        request.answer.set_result(CommandAnswer(Outcome.DONE, {
            "transfer": "ringing", "mode": "blind" if request.action.kind is
            FeatureKind.BLIND_TRANSFER else "attended", "extension": request.action.extension,
        }))

    return answer


@dataclass(frozen=True)
class CallCommandRequest(CallRequest):
    """A command in a call's inbox; the conversation answers it on ``answer``."""

    command_id: str
    action: FeatureAction
    actor: str
    answer: asyncio.Future[CommandAnswer]
    type: str = "CallCommandRequest"


def refusal(kind: FeatureKind, *, recording: bool, paused: bool) -> str | None:
    """Why the call cannot do this now, or None when it can."""
    if kind is FeatureKind.PAUSE:
        if paused:
            return "the call's recording is already paused"
        if not recording:
            return "the call is not being recorded: there is nothing to pause"
    if kind is FeatureKind.RESUME and not paused:
        return "the call's recording is not paused"
    return None


async def answer_command(
    request: CallCommandRequest,
    recorder: ConversationRecorder,
    run: Callable[[FeatureAction, str], Awaitable[None]],
) -> None:
    """Carry out ``request`` in the conversation with ``run`` (the agent's feature code's
    own step, with the asker as actor) and answer it; a step that raises (the call
    ended) is answered as failed and raised on for the call to end."""
    if request.answer.done():  # the asker stopped waiting
        return
    kind = request.action.kind
    refused = refusal(kind, recording=recorder.recording, paused=recorder.paused)
    if refused is not None:
        request.answer.set_result(CommandAnswer(Outcome.REFUSED, error=refused))
        return
    try:
        await run(request.action, request.actor)
    except BaseException:
        if not request.answer.done():
            request.answer.set_result(CommandAnswer(
                Outcome.FAILED, error="the call ended while the command ran"))
        raise
    if request.answer.done():
        return
    if recorder.paused is (kind is FeatureKind.PAUSE):
        request.answer.set_result(CommandAnswer(Outcome.DONE, {"paused": recorder.paused}))
    else:  # Asterisk refused the mute or unmute: the recording was just ending
        request.answer.set_result(CommandAnswer(
            Outcome.FAILED, error="Asterisk refused: the recording was ending"))


class LiveCallCommands:
    """The service's desk for commands about its own live calls."""

    def __init__(self, find_session: Callable[[str], CallSession | None]) -> None:
        self._find = find_session

    def takes(self, command: PendingCommand) -> bool:
        return (
            command.kind in CALL_COMMAND_KINDS
            and command.call_id is not None
            and self._find(command.call_id) is not None
        )

    async def carry_out(self, command: TakenCommand) -> CommandAnswer:
        assert command.call_id is not None
        session = self._find(command.call_id)
        if session is None:
            return CommandAnswer(Outcome.FAILED, error="the call ended")
        if not session.conversing:
            return CommandAnswer(
                Outcome.REFUSED,
                error="the call is not connected yet: nothing is recorded before the "
                "agent answers",
            )
        answer: asyncio.Future[CommandAnswer] = asyncio.get_running_loop().create_future()
        session.inbox.put(CallCommandRequest(
            command_id=command.id, action=action_of(command.kind, command.arguments),
            actor=command.requested_by, answer=answer,
        ))
        try:
            return await asyncio.wait_for(asyncio.shield(answer), ANSWER_WITHIN_S)
        except TimeoutError:
            answer.cancel()
            return CommandAnswer(Outcome.FAILED, error="the call ended before the command ran")
