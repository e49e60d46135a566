"""Running a registered request: start it, do what its type asks, and close it when done.

The request is marked in progress (and committed) before the action starts, so the
register shows that someone is working on it even if the action is interrupted. It is
completed only when the action says its work is complete; an action that had to leave
something for later (a backend that was down) stores its partial result and leaves the
request in progress, and running it again finishes the work. Closed requests (done,
rejected) are never run again: their answer was given.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

from pbx_bridge.calls.models import DataSubjectRequest
from pbx_bridge.subjects.access import answer_access
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.erasure import (
    DecisionRequired,
    answer_anonymise,
    answer_erasure,
    answer_object,
    answer_withdraw,
)
from pbx_bridge.subjects.export import answer_export
from pbx_bridge.subjects.register import (
    RequestStateError,
    RequestStatus,
    RequestType,
    complete,
    get_request,
    start,
)
from storage.backends.base import Backend

Handler = Callable[[RequestEnv, DataSubjectRequest], Awaitable[dict[str, object]]]

# Answers that read and write in the dispatcher's own session (the request is attached).
_IN_SESSION: dict[str, Handler] = {
    RequestType.ACCESS.value: answer_access,
    RequestType.EXPORT.value: answer_export,
}


class RequestClosed(RequestStateError):
    """The request was answered (done) or refused (rejected): it is not run again."""


def _check_runnable(request: DataSubjectRequest) -> None:
    if request.status == RequestStatus.DONE.value:
        raise RequestClosed(
            f"request {request.reference} is done (handled by {request.handled_by}); "
            f"its result is shown by `pbx-bridge dsar show {request.reference}`"
        )
    if request.status == RequestStatus.REJECTED.value:
        raise RequestClosed(
            f"request {request.reference} was rejected ({request.reject_reason}); "
            "open a new request if the subject asks again"
        )


def _earlier_decision(request: DataSubjectRequest) -> str | None:
    """The DPO decision given to an earlier, unfinished run of the same objection."""
    if request.result is None:
        return None
    try:
        earlier = json.loads(request.result)
    except ValueError:
        return None
    decision = earlier.get("dpo_decision") if isinstance(earlier, dict) else None
    return decision if isinstance(decision, str) and decision.strip() else None


def is_complete(result: Mapping[str, object]) -> bool:
    """Answers that cannot be partial (access, export) say nothing and are complete."""
    return result.get("complete", True) is True


async def handle_request(
    env: RequestEnv,
    ref_or_id: str,
    *,
    decision: str | None = None,
    backends: Mapping[str, Backend] | None = None,
) -> dict[str, object]:
    """Run the request's action; returns its result (``complete`` False: still in progress).

    ``decision``: the DPO's decision, required for an objection (kept from an earlier
    unfinished run if not given again). ``backends`` replaces the configured storage
    backends for the deletions (tests).
    """
    async with env.sessions() as session:
        request = await get_request(session, ref_or_id)
        _check_runnable(request)
        if request.type == RequestType.OBJECT.value:
            decision = decision or _earlier_decision(request)
            if decision is None:
                raise DecisionRequired(
                    f"request {request.reference} is an objection: recordings kept under "
                    "legitimate interest are deleted only after the DPO upheld it; give the "
                    "decision (dsar run REF --dpo-decision TEXT), or reject the request"
                )
        await start(session, request, actor=env.actor, now=env.now())
        await session.commit()
        in_session = _IN_SESSION.get(request.type)
        if in_session is not None:
            result = await in_session(env, request)
            if is_complete(result):
                await complete(session, request, actor=env.actor, result=result, now=env.now())
            await session.commit()
            return result
        # The actions below commit step by step in sessions of their own; this one must
        # hold no transaction meanwhile (SQLite allows one writer).
        session.expunge(request)
    result = await _act(env, request, decision=decision, backends=backends)
    async with env.sessions() as session:
        current = await get_request(session, request.id)
        if is_complete(result):
            await complete(session, current, actor=env.actor, result=result, now=env.now())
        else:
            current.result = json.dumps(
                result, sort_keys=True, default=str, ensure_ascii=False
            )
        await session.commit()
    return result


async def _act(
    env: RequestEnv,
    request: DataSubjectRequest,
    *,
    decision: str | None,
    backends: Mapping[str, Backend] | None,
) -> dict[str, object]:
    kind = request.type
    if kind == RequestType.ERASURE.value:
        return await answer_erasure(env, request, backends=backends)
    if kind == RequestType.ANONYMISE.value:
        return await answer_anonymise(env, request, backends=backends)
    if kind == RequestType.WITHDRAW.value:
        return await answer_withdraw(env, request, backends=backends)
    if kind == RequestType.OBJECT.value:
        return await answer_object(env, request, decision=decision, backends=backends)
    raise RequestStateError(f"request {request.reference} has an unknown type {kind!r}")
