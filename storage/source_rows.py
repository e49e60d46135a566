"""Which recording rows Asterisk's recording names belong to.

A name is a row's ``asterisk_name``, or, for a stereo row, that name plus a leg suffix
(``storage.legs``); names of other applications' recordings belong to no row.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.legs import belongs_to, candidate_names
from storage.models import Recording

_NAME_BATCH = 500


async def row_for_source_name(session: AsyncSession, name: str) -> Recording | None:
    """The row an Asterisk recording belongs to: by its name, or a stereo leg's base."""
    result = await session.scalars(
        select(Recording).where(Recording.asterisk_name.in_(candidate_names(name)))
    )
    for row in result.all():
        if belongs_to(name, row.asterisk_name, row.layout):
            return row
    return None


async def known_source_names(
    sessions: async_sessionmaker[AsyncSession], names: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """Which of these Asterisk names are ours: name -> (recording id, status)."""
    known: dict[str, tuple[str, str]] = {}
    unique = sorted(set(names))
    async with sessions() as session:
        for start in range(0, len(unique), _NAME_BATCH):
            batch = unique[start : start + _NAME_BATCH]
            # A stereo leg is known by its row's name, not its own.
            candidates = sorted({c for name in batch for c in candidate_names(name)})
            rows = {
                asterisk_name: (recording_id, status, layout)
                for asterisk_name, recording_id, status, layout in await session.execute(
                    select(
                        Recording.asterisk_name, Recording.id, Recording.status,
                        Recording.layout,
                    ).where(Recording.asterisk_name.in_(candidates))
                )
            }
            for name in batch:
                for candidate in candidate_names(name):
                    found = rows.get(candidate)
                    if found is not None and belongs_to(name, candidate, found[2]):
                        known[name] = (found[0], found[1])
                        break
    return known


__all__ = ["known_source_names", "row_for_source_name"]
