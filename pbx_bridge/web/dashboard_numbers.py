"""The dashboard's numbers as a principal may see them, and the DSAR badge of every page.

Both come from caches refreshed in the background (``RefreshingCache``): the dashboard
query takes about a second at 1,000,000 calls, so it runs at most once per
``[web] dashboard_refresh_s`` per scope (every call, or one supervisor's extensions), and
the badge's cheap count at most every ``BADGE_MAX_AGE_S``. What a role sees follows the
users module: the calls and consent numbers with ``calls.read`` (a supervisor's limited to
their extensions, in the query), storage with ``storage.status`` (admin: operational,
nothing personal), the requests with ``dsar.read`` (dpo).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.dashboard import CallStats, Dashboard, DsarStats, StorageStats, dashboard
from pbx_bridge.calls.dashboard import dsar_stats as read_dsar_stats
from pbx_bridge.web.accounts import Accounts, Principal
from pbx_bridge.web.permissions import CALLS_READ, DASHBOARD_READ, DSAR_READ, STORAGE_STATUS
from pbx_bridge.web.refreshing_cache import RefreshingCache

BADGE_MAX_AGE_S = 15.0
Scope = frozenset[str] | None  # the extensions counted; None: every call


class DashboardNotAllowed(Exception):
    """The principal's role (or token) has no ``dashboard.read``."""


@dataclass(frozen=True)
class VisibleDashboard:
    computed_at: datetime
    days: int
    calls: CallStats | None  # None: not for this principal
    storage: StorageStats | None
    dsars: DsarStats | None


class DashboardNumbers:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        accounts: Accounts,
        *,
        soon_days: int,
        refresh_s: float,
    ) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self._soon_days = soon_days
        self.dashboards: RefreshingCache[Scope, Dashboard] = RefreshingCache(
            self._dashboard, max_age_s=refresh_s
        )
        self.badges: RefreshingCache[None, DsarStats] = RefreshingCache(
            self._badge, max_age_s=min(BADGE_MAX_AGE_S, refresh_s)
        )

    async def _dashboard(self, scope: Scope, now: datetime) -> Dashboard:
        async with self._sessions() as session:
            return await dashboard(session, now=now, soon_days=self._soon_days,
                                   extensions=scope)

    async def _badge(self, _: None, now: datetime) -> DsarStats:
        async with self._sessions() as session:
            return await read_dsar_stats(session, now=now, soon_days=self._soon_days)

    async def _may(self, principal: Principal, action: str) -> bool:
        return (await self._accounts.allowed(principal, action)).allowed

    async def for_principal(self, principal: Principal) -> VisibleDashboard:
        if not await self._may(principal, DASHBOARD_READ):
            raise DashboardNotAllowed
        calls = await self._accounts.allowed(principal, CALLS_READ)
        scope: Scope = frozenset()  # no calls.read: nothing of the calls is counted
        if calls.allowed:
            scope = None if calls.extensions is None else frozenset(calls.extensions)
        computed = await self.dashboards.get(scope)
        board = computed.value
        return VisibleDashboard(
            computed_at=computed.at,
            days=len(board.calls.days),
            calls=board.calls if calls.allowed else None,
            storage=board.storage if await self._may(principal, STORAGE_STATUS) else None,
            dsars=board.dsars if await self._may(principal, DSAR_READ) else None,
        )

    async def badge(self, principal: Principal) -> DsarStats | None:
        """None for whoever may not see the request register."""
        if not await self._may(principal, DSAR_READ):
            return None
        return (await self.badges.get(None)).value

    async def close(self) -> None:
        await self.dashboards.close()
        await self.badges.close()
