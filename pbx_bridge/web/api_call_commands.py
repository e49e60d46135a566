"""Commands to a live call by API: ``POST /api/v1/calls/{id}/pause`` and ``/resume`` (the
PCI pause, as the agent's ``*5`` / ``*6``), ``POST /api/v1/calls/{id}/transfer`` (as the
agent's ``*8`` / ``*9``, ``calls.transfer``; actor of the ``call.transferred`` entry),
and ``GET /api/v1/commands/{id}``.

The console is not the process holding the call: the command goes through the queue
(``pbx_bridge/commands/queue.py``) to the service that owns the call, and the request
waits up to ``[commands] wait_s`` for its outcome:

- 200: done (the command, ``state: done``, and ``result``);
- 202: taken by a service but not answered yet; ``Location`` is the command to poll;
- 409: the call has ended, or its state does not allow it (not recorded, not paused);
- 502: the service tried and could not (Asterisk refused, the call ended meanwhile);
- 504: no service took it within ``[commands] take_within_s``: no running service owns
  this call.

Who may: a supervisor of the call's extension (``calls.pause``; an agent's own token is
that of a supervisor of their extension). A dpo, an admin or an auditor may not: they do
not run calls, and a pause leaves a span of the call unrecorded. The pause is audited as
``recording.paused`` with the user or token as actor, and the command itself as
``command.requested`` and ``command.finished``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from pbx_bridge.calls.models import Call
from pbx_bridge.commands import queue
from pbx_bridge.commands.queue import CommandKind, CommandState, CommandView
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.call_record import actor_of, covers
from pbx_bridge.web.permissions import CALLS_PAUSE, CALLS_TRANSFER
from pbx_bridge.web.problems import problem
from pbx_bridge.web.web_state import WebState, web_state

router = APIRouter(prefix="/api/v1", tags=["commands"],
                   responses=problem_responses(401, 403, 404, 409, 422, 502, 504))

# Whoever may send one kind of command may read their own commands.
COMMAND_PERMISSIONS = (CALLS_PAUSE, CALLS_TRANSFER)

CallId = Annotated[uuid.UUID, Path(description="The call's id (a UUID).")]

# A settled command that did not get done, as the asker is answered.
_FAILURE_STATUS = {
    CommandState.REFUSED: 409,
    CommandState.FAILED: 502,
    CommandState.EXPIRED: 504,
    CommandState.UNANSWERED: 504,
}


class CommandOut(BaseModel):
    """A command to the service that owns a call, as it stands."""

    id: str
    call_id: str | None
    node: str | None
    kind: str
    arguments: dict[str, Any]
    requested_by: str
    created_at: str
    expires_at: str
    taken_at: str | None
    taken_by: str | None
    finished_at: str | None
    state: str
    result: dict[str, Any] | None
    error: str | None


_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": CommandOut, "description": "Done: the call's recording is paused "
          "(resumed); `result.paused` says which."},
    202: {"model": CommandOut, "description": "Taken by the service, not answered yet: "
          "poll `Location` (`GET /api/v1/commands/{id}`)."},
}


def command_location(command_id: str) -> str:
    return f"/api/v1/commands/{command_id}"


def command_answer(view: CommandView) -> Response:
    """The asker's answer for a command as it stands after the wait."""
    body = view.to_json()
    if view.state is CommandState.DONE:
        return JSONResponse(body, status_code=200)
    if view.state in (CommandState.PENDING, CommandState.TAKEN):
        return JSONResponse(body, status_code=202,
                            headers={"Location": command_location(view.id)})
    return problem(_FAILURE_STATUS[view.state], view.error or view.state.value,
                   instance=command_location(view.id), command=view.id,
                   state=view.state.value)


@dataclass(frozen=True)
class _Asking:
    """Who may send a kind of command, and how a refusal reads."""

    permission: str
    may_not: str  # "pause a call's recording"
    may_not_this: str  # "pause this call's recording"
    ended: str  # "only a live call can be paused"


_PAUSING = _Asking(CALLS_PAUSE, "pause a call's recording", "pause this call's recording",
                   "only a live call can be paused")
_TRANSFERRING = _Asking(CALLS_TRANSFER, "transfer a call", "transfer this call",
                        "only a live call can be transferred")


async def _may_ask(
    state: WebState, principal: Principal, call_id: uuid.UUID, asking: _Asking
) -> bool:
    """403 / 404 unless this principal may send this call the command; whether the
    call has ended."""
    grant = await state.accounts.allowed(principal, asking.permission)
    if not grant.allowed:
        raise HTTPException(403, f"this token's role may not {asking.may_not}")
    async with state.sessions() as session:
        call = await session.get(Call, str(call_id))
        if call is None:
            raise HTTPException(404, "no such call")
        if not covers(grant, call.extension):
            raise HTTPException(403, f"this token's role may not {asking.may_not_this}")
        return call.ended_at is not None or call.disposition is not None


async def _call_command(
    state: WebState, principal: Principal, call_id: uuid.UUID, kind: CommandKind,
    asking: _Asking = _PAUSING, arguments: dict[str, Any] | None = None,
) -> Response:
    if await _may_ask(state, principal, call_id, asking):
        raise HTTPException(409, f"the call has ended: {asking.ended}")
    settings = state.config.commands
    command_id = await queue.submit(
        state.sessions, kind=kind, call_id=str(call_id), arguments=arguments or {},
        actor=actor_of(principal), take_within_s=settings.take_within_s,
    )
    view = await queue.wait_for_outcome(state.sessions, command_id, limit_s=settings.wait_s)
    return command_answer(view)


@router.post("/calls/{call_id}/pause", responses=_ANSWERS, response_model=None)
async def pause_call(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    call_id: CallId,
) -> Response:
    """PCI pause: the call's recording is muted (silence of the same length in the file)
    until ``/resume``, the agent's ``*6`` or ``[call] pci_pause_max_minutes``."""
    return await _call_command(web_state(request), principal, call_id, CommandKind.PAUSE)


@router.post("/calls/{call_id}/resume", responses=_ANSWERS, response_model=None)
async def resume_call(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    call_id: CallId,
) -> Response:
    """The PCI pause ends: the recording hears the call again."""
    return await _call_command(web_state(request), principal, call_id, CommandKind.RESUME)


class TransferIn(BaseModel):
    """Where the call goes: an extension, blind (the caller goes at once) or attended
    (the agent talks to it first while the caller holds, and completes by hanging up)."""

    model_config = ConfigDict(extra="forbid")

    extension: str = Field(pattern=r"^[0-9]{1,20}$", description="The target extension.")
    mode: Literal["blind", "attended"] = "blind"


_TRANSFER_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": CommandOut, "description": "The target is ringing (`result.transfer`); "
          "how it went is in the call's `transfers` (`GET /api/v1/calls/{id}`)."},
    202: _ANSWERS[202],
}


async def may_transfer(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    call_id: CallId,
) -> None:
    """Who may not transfer this call is refused (403) before its body is read."""
    await _may_ask(web_state(request), principal, call_id, _TRANSFERRING)


@router.post("/calls/{call_id}/transfer", responses=_TRANSFER_ANSWERS, response_model=None,
             dependencies=[Depends(may_transfer)])
async def transfer_call(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    call_id: CallId,
    body: TransferIn,
) -> Response:
    """Hand the live call to ``extension``, as the agent's ``*8`` (blind) or ``*9``
    (attended): one call and one recording; the extension's policy applies. The agent
    is brought back (and told) if it is busy or does not answer. Refused (409) for the
    extension already on the call."""
    return await _call_command(
        web_state(request), principal, call_id, CommandKind.TRANSFER, _TRANSFERRING,
        {"extension": body.extension, "mode": body.mode},
    )


@router.get("/commands/{command_id}", response_model=CommandOut)
async def get_command(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    command_id: Annotated[uuid.UUID, Path(description="The command's id (a UUID).")],
) -> dict[str, Any]:
    """A command as it stands (``state``: pending, taken, done, refused, failed, expired,
    unanswered). Only whoever asked for it sees it: another user's or token's is 404."""
    state = web_state(request)
    if not any([(await state.accounts.allowed(principal, action)).allowed
                for action in COMMAND_PERMISSIONS]):
        raise HTTPException(403, "this token's role may not send commands to calls")
    view = await queue.read(state.sessions, str(command_id))
    if view is None or view.requested_by != actor_of(principal):
        raise HTTPException(404, "no such command")
    return view.to_json()
