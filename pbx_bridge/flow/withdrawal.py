"""The call flow's side of the do-not-record list: who is on it, and pressing 8.

Pressing 8 (on a route that offers it) must protect the caller at once, before anyone
in the back office acts: the subject goes on the list and a withdrawal request is opened
in one transaction, so the register shows the request and every later call is connected
without recording. Deleting the recordings already made is the request's work (``dsar
run``), with its own guarantees and report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from pbx_bridge.flow.context import FlowContext
from pbx_bridge.subjects.do_not_record import ListReason, is_listed, put_on_list
from pbx_bridge.subjects.index import InvalidNumber
from pbx_bridge.subjects.register import RequestChannel, RequestType, open_request
from storage.models import utcnow

log = logging.getLogger(__name__)

CALLER_ACTOR = "caller"


@dataclass(frozen=True)
class Withdrawal:
    reference: str
    request_id: str


async def on_do_not_record_list(ctx: FlowContext, subject_key: str | None) -> bool:
    """False for a caller without a public number: nobody can have listed them."""
    if subject_key is None:
        return False
    async with ctx.sessions() as session:
        return await is_listed(session, subject_key)


async def withdraw_by_keypress(
    ctx: FlowContext, caller_number: str, call_id: str
) -> Withdrawal | None:
    """List the caller and open their withdrawal request; None if that could not be stored.

    The caller is connected unrecorded either way; the flow tells them only what is true.
    """
    try:
        async with ctx.sessions() as session:
            request = await open_request(
                session,
                ctx.subjects,
                number=caller_number,
                type=RequestType.WITHDRAW,
                channel=RequestChannel.KEYPRESS,
                actor=CALLER_ACTOR,
                due_days=ctx.request_due_days,
                note=f"pressed 8 at the disclosure during call {call_id}",
            )
            await put_on_list(
                session,
                request.subject_key,
                reason=ListReason.WITHDRAW,
                request_id=request.id,
                actor=CALLER_ACTOR,
                now=utcnow(),
            )
            await session.commit()
    except (SQLAlchemyError, InvalidNumber) as exc:
        log.error("call %s: withdrawal by keypress could not be stored: %s", call_id, exc)
        return None
    log.info(
        "call %s: caller withdrew consent by keypress; request %s opened, on the "
        "do-not-record list",
        call_id,
        request.reference,
    )
    return Withdrawal(request.reference, request.id)
