"""The calls a principal may see, through the call search ``calls list`` uses
(``pbx_bridge.calls.search``): newest first a page at a time, only their extensions'
calls when their role is limited to some (in the query, never after it), numbers masked
unless they may unmask, and every unmasked page audited with who saw it."""

from __future__ import annotations

from dataclasses import replace

from pbx_bridge.calls.search import CallFilter, CallPage, search_calls
from pbx_bridge.privacy import mask_number
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.permissions import CALLS_READ, NUMBERS_UNMASK
from pbx_bridge.web.viewer import Forbidden
from pbx_bridge.web.web_state import WebState
from storage.audit_trail import record_event
from storage.database import outside_transaction


class NumberFilterNotAllowed(Exception):
    """Searching by a number reveals whose calls they are: only for those who may unmask."""


async def visible_calls(
    state: WebState,
    principal: Principal,
    filters: CallFilter,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[CallPage, bool]:
    """One page of the calls and whether their numbers are shown unmasked.

    Raises Forbidden, NumberFilterNotAllowed, or the search's InvalidSearch /
    SubjectKeyError for filters it cannot take."""
    reading = await state.accounts.allowed(principal, CALLS_READ)
    if not reading.allowed:
        raise Forbidden
    unmasked = (await state.accounts.allowed(principal, NUMBERS_UNMASK)).allowed
    if filters.number is not None and not unmasked:
        raise NumberFilterNotAllowed
    scope = None if reading.extensions is None else frozenset(reading.extensions)
    scoped = replace(filters, extensions=scope)
    subjects = await state.subjects.index() if scoped.number is not None else None
    async with state.sessions() as session:
        if not unmasked:
            # Nothing written (no audit entry for a masked page): no transaction.
            await outside_transaction(session)
        page = await search_calls(
            session, scoped, signer=state.cursor_signer, subjects=subjects, cursor=cursor,
            limit=limit,
        )
        if unmasked and page.calls:
            await record_event(
                session,
                actor=principal.actor,
                action="calls.unmasked",
                target="calls:listing",
                details={
                    "count": len(page.calls),
                    "ids": [call.id for call in page.calls],
                    "filters": audited_filters(scoped),
                },
            )
            await session.commit()
    if not unmasked:
        page = CallPage([call.masked() for call in page.calls], page.next_cursor)
    return page, unmasked


def audited_filters(filters: object) -> dict[str, object]:
    """A search's filters (a dataclass: the calls' or the consents') as the audit entry
    keeps them: a number masked (the trail is never erased), times as ISO text, the
    scope left out."""
    kept: dict[str, object] = {}
    for name, value in filters.__dict__.items():
        if value is None or name == "extensions":
            continue
        if name == "number":
            value = mask_number(value)
        kept[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return kept
