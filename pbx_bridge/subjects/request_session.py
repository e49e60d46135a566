"""The session a request handler works in: the caller's, when the request belongs to one.

The dispatcher loads the request, marks it in progress and commits the handler's
changes to it; what the handler adds (audit entries) must commit in that same
transaction, and on SQLite a second writer beside it would wait on the first's lock.
A request that belongs to no session (a script, a test) gets a session of its own,
committed when the block succeeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_object_session, async_sessionmaker

from pbx_bridge.calls.models import DataSubjectRequest


@asynccontextmanager
async def request_session(
    sessions: async_sessionmaker[AsyncSession], request: DataSubjectRequest
) -> AsyncIterator[AsyncSession]:
    own = async_object_session(request)
    if own is not None:
        yield own  # the caller commits
        return
    async with sessions() as session:
        yield session
        await session.commit()
