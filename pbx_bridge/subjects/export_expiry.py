"""Deleting answered exports and access reports on their day, inside the service.

An export holds a subject's recordings outside the storage pipeline's retention; left
lying in the export folder it would outlive every deletion the subject asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.subjects.export import expire_exports
from storage.models import utcnow
from storage.periodic import PeriodicJob

HOUR_S = 3_600.0


class ExportExpirer(PeriodicJob[list[str]]):
    """Runs ``expire_exports`` at start and every ``interval_s``."""

    name = "expiring data-subject exports"
    job = "export_expiry"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        interval_s: float = HOUR_S,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._sessions = sessions
        self._now = now

    async def run_once(self) -> list[str]:
        return await expire_exports(self._sessions, now=self._now())
