"""The calls a principal may see, as the CLI's ``calls list`` shows them: newest first,
only their extensions' calls when their role is limited to some, numbers masked unless
they may unmask."""

from __future__ import annotations

from datetime import datetime

from pbx_bridge.calls.history import CallView, list_calls
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.permissions import CALLS_READ, NUMBERS_UNMASK
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import WebState


class NumberFilterNotAllowed(Exception):
    """Searching by a number reveals whose calls they are: only for those who may unmask."""


async def visible_calls(
    state: WebState,
    principal: Principal,
    *,
    number: str | None,
    since: datetime | None,
    limit: int,
) -> tuple[list[CallView], bool]:
    """The calls and whether their numbers are shown unmasked."""
    reading = await state.accounts.allowed(principal, CALLS_READ)
    if not reading.allowed:
        raise Forbidden
    unmasked = (await state.accounts.allowed(principal, NUMBERS_UNMASK)).allowed
    if number is not None and not unmasked:
        raise NumberFilterNotAllowed
    async with state.sessions() as session:
        calls = await list_calls(
            session, number=number, since=since, limit=limit, extensions=reading.extensions
        )
    return (calls if unmasked else [call.masked() for call in calls]), unmasked
