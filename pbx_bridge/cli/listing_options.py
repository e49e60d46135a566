"""What the history listings (calls, recordings, consents) share: their options, and how
a listing is fetched, masked and printed.

``--since`` takes a date or a date-time; without a zone it is read as UTC, like all output.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Protocol, Self, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.cli.actor import cli_actor
from pbx_bridge.cli.context import session_for, settings_of
from pbx_bridge.cli.errors import reporting_errors
from pbx_bridge.cli.table import render_table
from pbx_bridge.privacy import mask_number
from storage.audit_trail import record_event


class Listed(Protocol):
    @property
    def id(self) -> str: ...

    def masked(self) -> Self: ...

    def to_json(self) -> dict[str, object]: ...


V = TypeVar("V", bound=Listed)
Query = Callable[[AsyncSession, str | None, datetime | None, int], Awaitable[Sequence[V]]]


def show_listing(
    ctx: typer.Context,
    query: Query[V],
    *,
    headers: Sequence[str],
    row: Callable[[V], Sequence[object]],
    as_json: bool,
    number: str | None,
    since: str | None,
    limit: int,
    unmasked: bool,
    kind: str,
) -> None:
    """Fetch, mask unless asked not to (personal data), print as a table or JSON.

    Numbers shown in the clear are an access to personal data: an audit entry
    (``<kind>.unmasked``, with the ids shown) commits before anything is printed.
    """
    since_at = parse_since(since)

    async def fetch() -> Sequence[V]:
        async with session_for(settings_of(ctx)) as session:
            items = await query(session, number, since_at, limit)
            if unmasked:
                await record_unmasked(
                    session, kind, [item.id for item in items], number=number, since=since_at
                )
            return items

    with reporting_errors():
        items = asyncio.run(fetch())
    if not unmasked:
        items = [item.masked() for item in items]
    if as_json:
        typer.echo(json.dumps([i.to_json() for i in items], indent=2, ensure_ascii=False))
        return
    typer.echo(render_table(headers, [row(item) for item in items]))


async def record_unmasked(
    session: AsyncSession,
    kind: str,
    ids: Sequence[str],
    *,
    number: str | None = None,
    since: datetime | None = None,
) -> None:
    """``<kind>.unmasked``: who saw which rows' numbers in the clear (the filter's number
    masked: the entry can never be erased)."""
    filters: dict[str, object] = {}
    if number is not None:
        filters["number"] = mask_number(number)
    if since is not None:
        filters["since"] = since
    await record_event(
        session,
        actor=cli_actor(),
        action=f"{kind}.unmasked",
        target=f"{kind}:listing",
        details={"count": len(ids), "ids": list(ids), "filters": filters},
    )


def parse_since(value: str | None, option: str = "--since") -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z]",
            param_hint=option,
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
