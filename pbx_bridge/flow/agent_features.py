"""What the agent's feature codes do beyond the keypad: PCI pauses and per-call retention.

A PCI pause mutes the conversation's live recordings in Asterisk (``/mute``: Asterisk
writes silence in place of the audio, so the file keeps its length and every later
moment its time; ``/pause`` leaves the span out). The card details are never written,
so nothing has to be blanked afterwards. Each pause is a row beside the recording and
an audit entry (``calls/pauses.py``), written only when a pause happens.

A retention choice moves the call's conversation recordings to another class; with a
0-day class (``*0`` = do not keep) the purge deletes them through the deleter as soon
as the call has ended and they are stored, everywhere they were copied.
"""

from __future__ import annotations

from pbx_bridge.config import CallSettings, LegalBasis
from pbx_bridge.flow.feature_codes import FeatureAction, build_codes


def agent_actor(extension: str | None) -> str:
    """The audit actor for the agent's keypad: the extension the call reached."""
    return f"agent:{extension or 'unknown'}"


def feature_codes(settings: CallSettings) -> dict[str, FeatureAction]:
    """The codes of this configuration (checked when the configuration was loaded)."""
    return build_codes(
        pause=settings.pci_pause_code,
        resume=settings.pci_resume_code,
        retention=settings.retention_codes,
        blind_transfer=settings.blind_transfer_code,
        attended_transfer=settings.attended_transfer_code,
    )


def retention_choice_refused(
    legal_basis: LegalBasis, current_days: int, chosen_days: int
) -> str | None:
    """Why the agent may not choose this period, or None when they may.

    A recording kept under a legal obligation must be kept as long as the law says;
    the route's class carries that period, so an agent may lengthen it, never shorten
    it (``*0`` on such a line would delete what the law requires).
    """
    if legal_basis is LegalBasis.LEGAL_OBLIGATION and chosen_days < current_days:
        return (
            f"the line records under a legal obligation: {chosen_days} days is shorter "
            f"than the {current_days} required"
        )
    return None
