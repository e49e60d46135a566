"""Options shared by the history listings (calls, recordings, consents).

``--since`` takes a date or a date-time; without a zone it is read as UTC, like all output.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z]",
            param_hint="--since",
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def short_time(value: datetime | None) -> str | None:
    """UTC to the second: enough to find a call, narrow enough for a table."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON array for scripts.")]
NumberOption = Annotated[
    str | None,
    typer.Option("--number", help="Caller number; 0532…, +90532… and 532… match the same."),
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only from this UTC date/time (YYYY-MM-DD[THH:MM]).")
]
LimitOption = Annotated[
    int, typer.Option("--limit", min=1, help="At most this many, newest first.")
]
UnmaskedOption = Annotated[
    bool, typer.Option("--unmasked", help="Show full phone numbers (personal data).")
]
