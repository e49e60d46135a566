"""Retention classes: named periods a recording is kept for, editable by the operator.

The ``default`` class always exists: its period comes from the configuration
(``retention.default_days``) until an operator sets it in the database, so a fresh
install can record lawfully before anyone has configured anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from pbx_bridge.calls.changes import SYSTEM_ACTOR, record_change, record_removal
from pbx_bridge.calls.models import (
    CampaignRow,
    Extension,
    OutboundRoute,
    RetentionClassRow,
    Route,
)
from pbx_bridge.config import RetentionSettings
from storage.models import Recording, RecordingStatus, utcnow

DEFAULT_CLASS = "default"
CLASS_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_DAYS = 36500


class InvalidRetentionClass(ValueError):
    """A class name or period that cannot be stored; the message says which and why,
    ``field`` which input it was (``name``, ``days``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RetentionClassInUse(ValueError):
    """A class that routes, extensions, the default route or kept recordings still name:
    removing it would leave them pointing nowhere. The message says who uses it."""


class UnknownRetentionClass(LookupError):
    """A class was named that neither the database nor the built-in default knows."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown retention class {name!r}: create it with "
            f"`pbx-bridge retention set {name} DAYS` (see `pbx-bridge retention list`)"
        )
        self.name = name


@dataclass(frozen=True)
class RetentionClassInfo:
    name: str
    days: int
    # "config" while the default class has no row of its own, else "database".
    source: Literal["config", "database"]


def validate_class_name(name: str) -> str:
    if not CLASS_NAME_PATTERN.fullmatch(name):
        raise InvalidRetentionClass(
            f"invalid retention class name {name!r}: use 1-64 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit",
            field="name",
        )
    return name


def validate_days(days: int) -> int:
    if not 0 <= days <= MAX_DAYS:
        raise InvalidRetentionClass(
            f"invalid retention period {days} days: must be between 0 and {MAX_DAYS}",
            field="days",
        )
    return days


async def list_classes(
    session: AsyncSession, settings: RetentionSettings
) -> list[RetentionClassInfo]:
    rows = (await session.scalars(select(RetentionClassRow))).all()
    classes = {row.name: RetentionClassInfo(row.name, row.days, "database") for row in rows}
    classes.setdefault(
        DEFAULT_CLASS, RetentionClassInfo(DEFAULT_CLASS, settings.default_days, "config")
    )
    return sorted(classes.values(), key=lambda info: (info.name != DEFAULT_CLASS, info.name))


async def set_class(
    session: AsyncSession, name: str, days: int, *, actor: str = SYSTEM_ACTOR
) -> RetentionClassInfo:
    """Create or change a class. Existing recordings keep the retain_until they were given."""
    validate_class_name(name)
    validate_days(days)
    row = await session.get(RetentionClassRow, name)
    before: dict[str, object] | None = None if row is None else {"days": row.days}
    if row is None:
        session.add(RetentionClassRow(name=name, days=days, updated_at=utcnow()))
    else:
        row.days = days
        row.updated_at = utcnow()
    await session.flush()
    await record_change(
        session, actor=actor, kind="retention", key=name, before=before, after={"days": days}
    )
    return RetentionClassInfo(name, days, "database")


async def class_users(
    session: AsyncSession, name: str, *, default_route_class: str, default_outbound_class: str
) -> list[str]:
    """Who still names the class, one phrase each (empty: nobody; it may be removed)."""
    users: list[str] = []
    if name == DEFAULT_CLASS:
        users.append("it is the built-in default class")
    if name == default_route_class:
        users.append("the configured default route ([default_route] retention_class)")
    if name == default_outbound_class:
        users.append("the configured default outbound route "
                     "([default_outbound_route] retention_class)")
    namers: list[tuple[str, InstrumentedAttribute[str], Any]] = [
        ("route(s)", Route.did, Route.retention_class),
        ("extension(s)", Extension.number, Extension.retention_class),
        ("outbound route(s)", OutboundRoute.prefix, OutboundRoute.retention_class),
        ("campaign(s)", CampaignRow.name, CampaignRow.retention_class),
    ]
    for what, key, column in namers:
        keys = (await session.scalars(select(key).where(column == name).order_by(key))).all()
        if keys:
            users.append(f"{what} {', '.join(keys)}")
    kept = await session.scalar(
        select(func.count()).select_from(Recording).where(
            Recording.retention_class == name,
            Recording.status != RecordingStatus.DELETED.value,
        )
    )
    if kept:
        users.append(f"{kept} recording(s) still kept under it")
    return users


async def delete_class(
    session: AsyncSession, name: str, *, default_route_class: str, default_outbound_class: str,
    actor: str = SYSTEM_ACTOR,
) -> None:
    """Remove a class nobody uses; ``RetentionClassInUse`` says who does, so nothing is
    left naming a class that no longer exists. Audited as ``retention.deleted``."""
    validate_class_name(name)
    row = await session.get(RetentionClassRow, name)
    if row is None and name != DEFAULT_CLASS:
        raise UnknownRetentionClass(name)
    users = await class_users(session, name, default_route_class=default_route_class,
                              default_outbound_class=default_outbound_class)
    if users:
        raise RetentionClassInUse(
            f"retention class {name!r} is in use and cannot be removed: {'; '.join(users)}"
        )
    assert row is not None  # the default class is always in use
    before: dict[str, object] = {"days": row.days}
    await session.delete(row)
    await session.flush()
    await record_removal(session, actor=actor, kind="retention", key=name, before=before)


async def class_exists(session: AsyncSession, name: str) -> bool:
    if name == DEFAULT_CLASS:
        return True
    return await session.get(RetentionClassRow, name) is not None


async def require_class(session: AsyncSession, name: str) -> str:
    """Return ``name`` if it is a known class, so callers can validate before they write."""
    if not await class_exists(session, name):
        raise UnknownRetentionClass(name)
    return name


async def class_days(session: AsyncSession, name: str, settings: RetentionSettings) -> int:
    row = await session.get(RetentionClassRow, name)
    if row is not None:
        return row.days
    if name == DEFAULT_CLASS:
        return settings.default_days
    raise UnknownRetentionClass(name)
