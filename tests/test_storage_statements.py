"""How many SQL statements one recording costs on its way through the pipeline.

The database was the largest CPU item per call (bench/README.md, call_load): every
statement is ORM and driver work on the event loop. These counts are exact for the
happy path, so a reload or a lookup that creeps back shows here, not in a benchmark.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statement_counts import counted
from storage_fakes import DirSource, db_url, sessions, wav_bytes

from storage.backends.local import LocalBackend
from storage.models import Recording, RecordingKind, RecordingStatus
from storage.pipeline import RecordingPipeline

__all__ = ["db_url", "sessions"]  # fixtures, imported for pytest


async def test_one_recording_costs_a_fixed_number_of_statements(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    store = tmp_path / "store"
    pipeline = RecordingPipeline(
        sessions, source, tmp_path / "spool", LocalBackend(store),
        retry_initial_s=0.01, retry_max_s=0.05, stop_timeout_s=0.5,
    )
    async with pipeline:
        with counted(sessions) as seen:
            row = await pipeline.begin(
                call_id="call-1", kind=RecordingKind.CONVERSATION, legal_basis="consent",
                retention_class="default", retention_days=30,
            )
            source.put(row.asterisk_name, wav_bytes(1.0, samplerate=8000))
            await pipeline.finished(row.asterisk_name)
            await pipeline.wait_idle()
            await pipeline.close_call("call-1", row.started_at)
    async with sessions() as session:
        stored = await session.get(Recording, row.id)
    assert stored is not None and stored.status == RecordingStatus.STORED
    # Every step still commits on its own (crash safety). The row is read once when the
    # ingest task starts (the compare-and-set moves hand it on from there, UPDATE ...
    # RETURNING, and finished() moves it by name the same way), and once by
    # close_call(). Before, the task read it again after every step and finished() read
    # it by name first (6 SELECT recordings in all, 4 SELECT recording_copies).
    assert seen["SELECT recordings"] == 2
    assert dict(seen) == {
        "INSERT recordings": 1,
        "SELECT recordings": 2,
        "UPDATE recordings": 5,
        # prepare's already-planned check, and the copy list before and after making
        # them; a copy becomes verified by a compare-and-set UPDATE with no SELECT.
        "SELECT recording_copies": 3,
        "INSERT recording_copies": 1,
        "UPDATE recording_copies": 1,
        # recording.stored, this process's first entry on a database made without the
        # head row: the head is created, locked, linked to and written; later entries
        # are one compare-and-set UPDATE and the INSERT (tests/test_journal_statements.py).
        "SELECT audit_log": 1,
        "INSERT audit_log": 1,
        "INSERT audit_head": 1,
        "UPDATE audit_head": 3,
        "COMMIT": 7,  # every step still commits before the next
    }
