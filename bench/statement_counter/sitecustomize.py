"""Counts the SQL statements and commits of the process it is loaded into (bench only).

``bench/run call_load --statements`` puts this folder on the service's PYTHONPATH with
``PBXB_STATEMENTS=FILE``: every engine's statements are counted by kind (``SELECT
calls``, ``UPDATE audit_head``, ...), with COMMITs, ROLLBACKs and the jobs handed to
aiosqlite's thread (``sqlite thread trips``), and SIGUSR1 writes the counts so far to
FILE as JSON, so the benchmark takes the difference over its load window. Without the
variable it does nothing.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

_OUT = os.environ.get("PBXB_STATEMENTS")


def statement_kind(statement: str) -> str:
    """``SELECT recordings``, ``UPDATE recordings``, ``INSERT audit_log``, ..."""
    words = statement.split()
    if not words:
        return "?"
    verb = words[0].upper()
    lowered = [w.strip('"(').lower() for w in words]
    if verb == "WITH":
        return "WITH"
    anchor = {"SELECT": "from", "INSERT": "into", "DELETE": "from"}.get(verb)
    if anchor is None:  # UPDATE <table>, PRAGMA, ...
        return f"{verb} {lowered[1]}" if len(lowered) > 1 else verb
    return f"{verb} {lowered[lowered.index(anchor) + 1]}" if anchor in lowered else verb


def _install(out: Path) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen[statement_kind(statement)] += 1

    def count_commit(_conn: Any) -> None:
        seen["COMMIT"] += 1

    def count_rollback(_conn: Any) -> None:
        seen["ROLLBACK"] += 1

    import aiosqlite

    original = aiosqlite.Connection._execute

    async def counted_trip(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen["sqlite thread trips"] += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = counted_trip  # type: ignore[method-assign]
    event.listen(Engine, "before_cursor_execute", count)
    event.listen(Engine, "commit", count_commit)
    event.listen(Engine, "rollback", count_rollback)

    def dump(_signum: int, _frame: FrameType | None) -> None:
        out.write_text(json.dumps(dict(seen)), encoding="utf-8")

    signal.signal(signal.SIGUSR1, dump)


if _OUT:
    _install(Path(_OUT))
