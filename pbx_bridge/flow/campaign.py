"""A call's campaign: the tag the dialplan gives it (``PBX_BRIDGE_CAMPAIGN``, passed as
the third Stasis argument by ``[pbx-bridge-inbound]``), and what the campaign asks of
the call: its recording mode (combined with the extension's in ``flow.policy``) and its
retention class.

Read in the session that reads the route and the extension, and only for a tagged call:
an untagged call costs nothing more. A tag that names no campaign set up with
``pbx-bridge campaign set`` is kept on the call (reports still find it) but asks nothing
of it, and is logged, so the admin learns of the typo.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.campaigns import CAMPAIGN_NAME_PATTERN, get_campaign
from pbx_bridge.calls.extensions import ExtensionInfo
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.flow.call_state import CallState

log = logging.getLogger(__name__)


def campaign_tag(value: str, channel_id: str) -> str | None:
    """The campaign named by the dialplan, or None (none given, or not a name)."""
    value = value.strip()
    if not value:
        return None
    if not CAMPAIGN_NAME_PATTERN.fullmatch(value):
        log.warning("channel %s: PBX_BRIDGE_CAMPAIGN %r is not a campaign name; ignored",
                    channel_id, value[:80])
        return None
    return value


def call_retention_class(
    route: ResolvedRoute, extension: ExtensionInfo | None, campaign_class: str | None
) -> str:
    """The class a call's recordings are kept per: its campaign's, else its extension's
    own, else its route's (pure)."""
    if campaign_class:
        return campaign_class
    if extension is not None and extension.retention_class:
        return extension.retention_class
    return route.retention_class


async def read_campaign(session: AsyncSession, state: CallState) -> str | None:
    """Fill in the call's campaign mode; the campaign's retention class, if it has one."""
    if state.campaign is None:
        return None
    campaign = await get_campaign(session, state.campaign)
    if campaign is None:
        log.warning("campaign %r is not set up (`pbx-bridge campaign set`): the call keeps "
                    "the tag, the extension's policy applies", state.campaign)
        return None
    state.campaign_recording = campaign.recording
    return campaign.retention_class
