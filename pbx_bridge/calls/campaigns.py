"""Campaigns: a tag on a call (a sales drive, a collections list) with its own recording
mode and retention class, as Headshed Cube records per campaign (manual, automatic or
none) and keeps sales recordings apart.

The mode combines with the extension's (``flow.policy.campaign_mode``): either can
forbid, so a campaign never records an extension that never records, and a ``never``
campaign is never recorded whoever takes its calls. The class, when set, is the one
its calls' recordings are kept under. Managed as routes are (``pbx-bridge campaign
set|list|delete``): checked before anything is written, every change audited as
``campaign.created|changed|deleted``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.changes import SYSTEM_ACTOR, record_change, record_removal, snapshot
from pbx_bridge.calls.models import CampaignRow
from pbx_bridge.calls.retention import require_class
from pbx_bridge.config import RecordingMode
from storage.models import utcnow

CAMPAIGN_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class InvalidCampaign(ValueError):
    """A campaign name or setting that cannot be stored; ``field`` names the input."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownCampaign(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown campaign {name!r}: create it with `pbx-bridge campaign set {name} "
            "--recording always|on-demand|never` (see `pbx-bridge campaign list`)"
        )
        self.name = name


@dataclass(frozen=True)
class CampaignInfo:
    name: str
    recording: RecordingMode
    retention_class: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "recording": self.recording.value,
                "retention_class": self.retention_class}


def validate_campaign_name(name: str) -> str:
    if not CAMPAIGN_NAME_PATTERN.fullmatch(name):
        raise InvalidCampaign(
            f"invalid campaign name {name!r}: use 1-64 lowercase letters, digits, '.', '-' "
            "or '_', starting with a letter or digit",
            field="name",
        )
    return name


def parse_recording(value: str) -> RecordingMode:
    try:
        return RecordingMode(value)
    except ValueError:
        modes = ", ".join(m.value for m in RecordingMode)
        raise InvalidCampaign(f"invalid recording mode {value!r}: use one of {modes}",
                              field="recording") from None


def _info(row: CampaignRow) -> CampaignInfo:
    return CampaignInfo(row.name, RecordingMode(row.recording), row.retention_class)


async def list_campaigns(session: AsyncSession) -> list[CampaignInfo]:
    rows = await session.scalars(select(CampaignRow).order_by(CampaignRow.name))
    return [_info(row) for row in rows.all()]


async def get_campaign(session: AsyncSession, name: str) -> CampaignInfo | None:
    row = await session.get(CampaignRow, name)
    return None if row is None else _info(row)


async def set_campaign(
    session: AsyncSession,
    name: str,
    *,
    recording: RecordingMode | None = None,
    retention_class: str | None = None,
    clear_retention: bool = False,
    actor: str = SYSTEM_ACTOR,
) -> CampaignInfo:
    """Create or change a campaign; fields not given keep their value (a new campaign
    records ``always`` and keeps the class its calls would have anyway)."""
    validate_campaign_name(name)
    if retention_class is not None:
        await require_class(session, retention_class)
    row = await session.get(CampaignRow, name)
    before = None if row is None else snapshot(row)
    if row is None:
        row = CampaignRow(name=name, recording=RecordingMode.ALWAYS.value, updated_at=utcnow())
        session.add(row)
    if recording is not None:
        row.recording = recording.value
    if retention_class is not None:
        row.retention_class = retention_class
    elif clear_retention:
        row.retention_class = None
    row.updated_at = utcnow()
    await session.flush()
    await record_change(session, actor=actor, kind="campaign", key=name, before=before,
                        after=snapshot(row))
    return _info(row)


async def delete_campaign(session: AsyncSession, name: str, *, actor: str = SYSTEM_ACTOR) -> None:
    """Remove a campaign; calls tagged with it keep their tag (it is history), new calls
    naming it are no campaign's."""
    validate_campaign_name(name)
    row = await session.get(CampaignRow, name)
    if row is None:
        raise UnknownCampaign(name)
    before = snapshot(row)
    await session.delete(row)
    await session.flush()
    await record_removal(session, actor=actor, kind="campaign", key=name, before=before)
