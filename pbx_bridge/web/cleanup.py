"""The console's own clean-up, in the web process on the project's job runner
(``storage.periodic``): sign-in sessions no cookie can use any more, and share links
that ended more than 30 days ago, deleted at start and every ``[web] cleanup_interval_s``.

Without it both tables only grow: a session row stays after sign-out, expiry or idling
out (a new sign-in removes only that user's expired ones), and a link after it expired,
was revoked or its one-time playback window closed. What happened is in the audit trail
either way. A failed run is logged and tried again (``PeriodicJob``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import AuthSettings
from pbx_bridge.users.web_sessions import delete_ended_sessions
from pbx_bridge.web.share_links import delete_ended_links
from storage.models import utcnow
from storage.periodic import PeriodicJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleaned:
    sessions: int
    share_links: int


class WebCleanup(PeriodicJob[Cleaned]):
    name = "web console clean-up"
    job = "web_cleanup"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        auth: AuthSettings,
        *,
        interval_s: float,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(interval_s=interval_s, retry_s=min(60.0, interval_s))
        self._sessions = sessions
        self._auth = auth
        self._now = now

    async def run_once(self) -> Cleaned:
        now = self._now()
        cleaned = Cleaned(
            sessions=await delete_ended_sessions(self._sessions, auth=self._auth, now=now),
            share_links=await delete_ended_links(self._sessions, now=now),
        )
        if cleaned.sessions or cleaned.share_links:
            log.info("web clean-up: %d ended sessions and %d ended share links deleted",
                     cleaned.sessions, cleaned.share_links)
        return cleaned
