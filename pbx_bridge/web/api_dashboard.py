"""``GET /api/v1/dashboard``: the dashboard page's numbers as JSON, for the same principal
the same parts (``null`` where the role may not see them), from the same cache."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from pbx_bridge.calls.dashboard import ConsentCount
from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.api_auth import api_principal
from pbx_bridge.web.api_models import problem_responses
from pbx_bridge.web.dashboard_numbers import DashboardNotAllowed, VisibleDashboard
from pbx_bridge.web.web_state import web_state

router = APIRouter(prefix="/api/v1", tags=["dashboard"], responses=problem_responses(401, 403))


class CountOut(BaseModel):
    calls: int
    asked: int  # callers who answered the disclosure or let it time out
    granted: int
    consent_rate: float | None  # granted / asked; null when nobody was asked


class DayOut(CountOut):
    day: date


class RouteOut(CountOut):
    did: str


class CallsOut(BaseModel):
    today: CountOut
    window: CountOut
    days: list[DayOut]  # every UTC day of the window, oldest first
    routes: list[RouteOut]  # most calls first


class BackendCopiesOut(BaseModel):
    backend: str
    pending: int
    dead: int


class StorageOut(BaseModel):
    recordings_stored: int
    copies_pending: int
    copies_dead: int
    backends: list[BackendCopiesOut]


class DsarsOut(BaseModel):
    overdue: list[str]  # references, oldest due first
    due_soon: list[str]


class DashboardOut(BaseModel):
    computed_at: datetime
    days: int
    calls: CallsOut | None  # null: the principal may not read calls
    storage: StorageOut | None  # null: no storage.status
    dsars: DsarsOut | None  # null: no dsar.read


def _count(count: ConsentCount) -> dict[str, object]:
    return {"calls": count.calls, "asked": count.asked, "granted": count.granted,
            "consent_rate": count.consent_rate}


def dashboard_out(board: VisibleDashboard) -> DashboardOut:
    calls = storage = dsars = None
    if board.calls is not None:
        c = board.calls
        calls = CallsOut.model_validate({
            "today": _count(c.today), "window": _count(c.window),
            "days": [{"day": d.day, **_count(d.count)} for d in c.days],
            "routes": [{"did": r.did, **_count(r.count)} for r in c.routes],
        })
    if board.storage is not None:
        s = board.storage
        storage = StorageOut(
            recordings_stored=s.recordings_stored, copies_pending=s.copies_pending,
            copies_dead=s.copies_dead,
            backends=[BackendCopiesOut(backend=b, pending=p, dead=d)
                      for b, (p, d) in s.by_backend.items()],
        )
    if board.dsars is not None:
        dsars = DsarsOut(overdue=board.dsars.overdue, due_soon=board.dsars.due_soon)
    return DashboardOut(computed_at=board.computed_at, days=board.days, calls=calls,
                        storage=storage, dsars=dsars)


@router.get("/dashboard", response_model=DashboardOut)
async def dashboard_api(
    request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> DashboardOut:
    """Calls and consent per day and per route over the last 30 UTC days (a supervisor's
    extensions only), storage and requests due, as of ``computed_at`` (recomputed in the
    background at most every ``[web] dashboard_refresh_s``)."""
    try:
        board = await web_state(request).dashboard.for_principal(principal)
    except DashboardNotAllowed as exc:
        raise HTTPException(403, "this token's role may not read the dashboard") from exc
    return dashboard_out(board)
