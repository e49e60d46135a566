"""The dashboard page (``/dashboard``, the page after sign-in): today's and the window's
calls and consent rate, the two per-day charts as inline SVG with a table of the same
numbers, calls per route, storage and the requests due, each part only for the roles that
may see it, with the time the (cached) numbers were computed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from pbx_bridge.calls.charts import calls_per_day_svg, consent_rate_per_day_svg
from pbx_bridge.cli.listing_options import short_time
from pbx_bridge.web.dashboard_numbers import DashboardNotAllowed
from pbx_bridge.web.pages import render
from pbx_bridge.web.viewer import Forbidden, Viewer, signed_in
from pbx_bridge.web.web_state import web_state

router = APIRouter(include_in_schema=False)


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


@router.get("/dashboard")
async def dashboard_page(
    request: Request, viewer: Annotated[Viewer, Depends(signed_in)]
) -> Response:
    assert viewer.principal is not None  # signed_in saw to it
    try:
        board = await web_state(request).dashboard.for_principal(viewer.principal)
    except DashboardNotAllowed as exc:
        raise Forbidden from exc
    charts = None
    if board.calls is not None:
        t = viewer.t
        charts = {
            "calls": calls_per_day_svg(
                board.calls.days, title=t("dashboard.calls_chart", days=board.days),
                description=t("dashboard.calls_chart_desc"), chart_id="calls-per-day",
            ),
            "consent": consent_rate_per_day_svg(
                board.calls.days, title=t("dashboard.consent_chart", days=board.days),
                description=t("dashboard.consent_chart_desc"), chart_id="consent-per-day",
            ),
        }
    return render(
        request, viewer, "dashboard.html", active="dashboard",
        board=board, charts=charts, percent=percent, short_time=short_time,
    )
