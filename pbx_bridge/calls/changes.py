"""Configuration changes (routes, extensions, retention classes) as audit entries.

Whether a call is recorded, and on what legal basis, follows from these rows; an auditor
asking "why was this call recorded?" needs to know who switched a route's basis or an
extension's policy, and when. Each entry holds every field that changed, from and to, so
the configuration at any past moment can be rebuilt from the trail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit_trail import record_event

# Who changed it when the caller does not say (tests, code paths outside the CLI).
SYSTEM_ACTOR = "system"
# Bookkeeping, not configuration.
_SKIPPED = frozenset({"updated_at"})

Snapshot = dict[str, object]


def snapshot(row: Any) -> Snapshot:
    """Every configuration column of a mapped row (not its key, not its timestamps)."""
    mapper = inspect(type(row))
    keys = {column.key for column in mapper.primary_key}
    return {
        attr.key: getattr(row, attr.key)
        for attr in mapper.column_attrs
        if attr.key not in _SKIPPED and attr.key not in keys
    }


async def record_change(
    session: AsyncSession,
    *,
    actor: str,
    kind: str,
    key: str,
    before: Snapshot | None,
    after: Snapshot,
) -> None:
    """``<kind>.created`` or ``<kind>.changed`` on ``<kind>:<key>``; nothing if nothing changed."""
    changes = {
        name: {"from": None if before is None else before.get(name), "to": value}
        for name, value in after.items()
        if before is None or before.get(name) != value
    }
    if before is not None and not changes:
        return
    await record_event(
        session,
        actor=actor,
        action=f"{kind}.{'created' if before is None else 'changed'}",
        target=f"{kind}:{key}",
        details={"changes": changes},
    )


async def record_removal(
    session: AsyncSession, *, actor: str, kind: str, key: str, before: Snapshot
) -> None:
    """``<kind>.deleted`` on ``<kind>:<key>``, with every field it had (so the trail can
    still rebuild the configuration before the removal)."""
    await record_event(
        session,
        actor=actor,
        action=f"{kind}.deleted",
        target=f"{kind}:{key}",
        details={"before": before},
    )
