"""Filter values from a query string, checked the same way for the pages and the API."""

from __future__ import annotations

from datetime import UTC, datetime

from pbx_bridge.calls.search import CallFilter


class BadFilter(ValueError):
    """A filter value cannot be used; the message names the parameter."""


def parse_time(value: str | None, name: str) -> datetime | None:
    """A date or date-time, read as UTC without a zone (as ``calls list --since``)."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BadFilter(
            f"{name}: {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z]"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def text(value: str | None) -> str | None:
    """An empty form field means no filter."""
    if value is None or not value.strip():
        return None
    return value.strip()


def call_filter(
    *,
    number: str | None = None,
    since: str | None = None,
    until: str | None = None,
    did: str | None = None,
    extension: str | None = None,
    disposition: str | None = None,
    consent: str | None = None,
    direction: str | None = None,
    reference: str | None = None,
    campaign: str | None = None,
) -> CallFilter:
    return CallFilter(
        since=parse_time(since, "since"), until=parse_time(until, "until"),
        number=text(number), did=text(did), extension=text(extension),
        disposition=text(disposition), consent=text(consent), direction=text(direction),
        reference=text(reference), campaign=text(campaign),
    )
