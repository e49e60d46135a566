"""Filter values from a query string, checked the same way for the pages and the API."""

from __future__ import annotations

from datetime import UTC, datetime

MAX_LIMIT = 500


class BadFilter(ValueError):
    """A filter value cannot be used; the message names the parameter."""


def parse_since(value: str | None) -> datetime | None:
    """A date or date-time, read as UTC without a zone (as ``calls list --since``)."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BadFilter(
            f"since: {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z]"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def clean_number(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()
