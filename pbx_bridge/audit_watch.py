"""The running service checks its own audit trail once a day.

`pbx-bridge audit verify` from cron is the strong check (its head noted off the
machine); this one is for the deployments where nobody set that up. It walks the whole
chain like the command, and between runs it remembers the head it last found intact, so
the next run also catches a rewrite of older entries whose later hashes were recomputed,
and a tail cut off. A broken chain is logged at ERROR on every run until someone looks;
an intact one prints the head at INFO, which a remote syslog keeps off the machine.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit_trail import VerifyReport, verify
from storage.periodic import PeriodicJob, Sleep

log = logging.getLogger(__name__)

DAY_S = 86_400.0
RETRY_S = 3_600.0


class AuditTrailWatch(PeriodicJob[VerifyReport]):
    name = "audit trail check"
    job = "audit_watch"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        interval_s: float = DAY_S,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(interval_s=interval_s, retry_s=RETRY_S, sleep=sleep)
        self._sessions = sessions
        # The head of the last intact walk: the chain must still pass through it.
        self.anchor: tuple[int, str] | None = None

    async def run_once(self) -> VerifyReport:
        async with self._sessions() as session:
            report = await verify(session, anchor=self.anchor)
        if report.ok:
            if report.head_seq:
                self.anchor = (report.head_seq, report.head_hash)
            log.info("%s", report.message)
        else:
            log.error(
                "audit trail check FAILED: %s (`pbx-bridge audit verify` names it too; the "
                "service keeps checking against the last intact head, seq %s)",
                report.message, self.anchor[0] if self.anchor else "none",
            )
        return report


__all__ = ["AuditTrailWatch"]
