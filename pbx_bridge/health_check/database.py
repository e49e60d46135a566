"""The database: reachable with the configured URL, and migrated to this code's schema."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from pbx_bridge.health_check.findings import Finding, ok, problem
from storage.database import DatabaseError, current_revision, head_revision, safe_url


def revision_finding(url: str, current: str | None, head: str) -> Finding:
    if current == head:
        return ok("database", f"{url} reachable, schema at {head}", revision=head)
    state = f"at revision {current}" if current else "empty (no schema)"
    return problem("database", f"{url} is {state}, this version needs {head}: run "
                   "`pbx-bridge db upgrade`", revision=current, head=head)


async def check_database(engine: AsyncEngine, url: str) -> list[Finding]:
    try:
        current = await current_revision(engine)
    except DatabaseError as exc:
        return [problem("database", f"{exc}: start the database or fix [database] url")]
    return [revision_finding(safe_url(url), current, head_revision())]
