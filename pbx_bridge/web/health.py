"""``/healthz`` of the web process: up, and whether its database answers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import JSONResponse

from pbx_bridge.web.api_models import Health
from pbx_bridge.web.web_state import web_state
from storage.database import DatabaseError, error_reason

router = APIRouter(tags=["health"])

DATABASE_TIMEOUT_S = 5.0


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(request: Request) -> JSONResponse:
    """200 when the database answers, else 503 naming why. Needs no account."""
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S), web_state(request).sessions() as session:
            await session.execute(text("SELECT 1"))
    except TimeoutError:
        return JSONResponse(
            {"status": "unavailable", "database": f"no answer in {DATABASE_TIMEOUT_S:g} s"}, 503
        )
    except (SQLAlchemyError, DatabaseError, OSError) as exc:
        return JSONResponse({"status": "unavailable", "database": error_reason(exc)}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})
