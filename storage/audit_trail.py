"""The audit trail: an append-only, hash-chained record of who did what to which data.

STUB: the chain and its concurrency guarantees are being written; the signature of
``record_event`` is final.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, utcnow

GENESIS = "0" * 64


async def record_event(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str = "ok",
    details: Mapping[str, object] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (it commits with the caller's work)."""
    last = await session.scalar(select(func.max(AuditEntry.seq)))
    entry = AuditEntry(
        seq=(last or 0) + 1,
        at=at or utcnow(),
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        details=json.dumps(dict(details or {}), sort_keys=True, default=str),
        prev_hash=GENESIS,
        hash=GENESIS,
    )
    session.add(entry)
    await session.flush()
    return entry
