"""Subject keys for rows written before calls carried them.

Calls and consents recorded by an older version have a caller but no ``caller_key``, so
a request for that caller would miss them. ``reindex`` fills the key in, a batch per
transaction (a large history never holds one long write lock), and can be re-run at any
time: rows already keyed are not touched, and rows whose caller is no public number (an
extension, 'anonymous') are passed over, not retried forever.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import Call, Consent
from pbx_bridge.subjects.index import SubjectIndex
from storage.progress import SILENT, Progress

DEFAULT_BATCH = 1000


@dataclass
class ReindexCount:
    keyed: int = 0
    no_public_number: int = 0  # extensions, 'anonymous', masked leftovers


@dataclass
class ReindexReport:
    calls: ReindexCount
    consents: ReindexCount


def _keys(index: SubjectIndex, rows: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    # A masked number (an anonymised row) is no number: never derive a key from it.
    return [(row_id, None if "*" in caller else index.key_of(caller)) for row_id, caller in rows]


def _unkeyed(model: type[Call] | type[Consent]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [model.caller_key.is_(None), model.caller.is_not(None)]
    if model is Call:
        conditions.append(Call.redaction.is_(None))
    return conditions


async def _count_unkeyed(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model).where(*_unkeyed(model)))
            for model in (Call, Consent)
        ]
    return sum(int(c or 0) for c in counts)


async def _reindex_table(
    sessions: async_sessionmaker[AsyncSession],
    index: SubjectIndex,
    model: type[Call] | type[Consent],
    batch: int,
    progress: Progress,
) -> ReindexCount:
    count = ReindexCount()
    after = ""
    conditions = _unkeyed(model)
    while True:
        async with sessions() as session, session.begin():
            rows = [
                (row_id, caller)
                for row_id, caller in (
                    await session.execute(
                        select(model.id, model.caller)
                        .where(*conditions, model.id > after)
                        .order_by(model.id)
                        .limit(batch)
                    )
                )
                if caller is not None
            ]
            if not rows:
                return count
            after = rows[-1][0]
            keyed = await asyncio.to_thread(_keys, index, rows)
            updates = [{"id": row_id, "caller_key": key} for row_id, key in keyed if key]
            if updates:
                await session.execute(update(model), updates)
            count.keyed += len(updates)
            count.no_public_number += len(keyed) - len(updates)
        progress.advance(len(rows))


async def reindex(
    sessions: async_sessionmaker[AsyncSession],
    index: SubjectIndex,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress = SILENT,
) -> ReindexReport:
    """Give every call and consent with a caller but no subject key its key."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    progress.start(await _count_unkeyed(sessions))
    calls = await _reindex_table(sessions, index, Call, batch, progress)
    consents = await _reindex_table(sessions, index, Consent, batch, progress)
    return ReindexReport(calls=calls, consents=consents)
