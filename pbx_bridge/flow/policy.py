"""Whether a call may be recorded: a pure function of the route, the caller's answer and the
extension, so the rule that decides a legal question can be read and tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pbx_bridge.config import LegalBasis, RecordingMode


class ConsentOutcome(StrEnum):
    """What the caller did with the disclosure; stored as the consent row's decision."""

    GRANTED = "granted"
    DECLINED = "declined"
    TIMEOUT = "timeout"
    NOT_ASKED = "not-asked"
    # Pressed 8 (where the route offers it): consent withdrawn for this and later calls.
    WITHDRAWN = "withdrawn"
    # Pressed 1 where no consent is asked (legitimate interest, contract): the caller
    # goes on without objecting; recorded on the route's basis, never "consent".
    NOT_OBJECTED = "not-objected"


class Direction(StrEnum):
    """Who placed the call: a caller from outside (or a colleague) reaching the
    extension, or the extension's agent calling out."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Scope(StrEnum):
    """Whether the other party is outside (a trunk) or another extension."""

    INTERNAL = "internal"
    EXTERNAL = "external"


def cell_name(direction: Direction, scope: Scope) -> str:
    """The name of one cell of an extension's policy: ``outbound_external``."""
    return f"{direction.value}_{scope.value}"


# Every cell, in the order the CLI, the API and the console show them.
CELLS: tuple[tuple[Direction, Scope], ...] = tuple(
    (direction, scope) for direction in Direction for scope in Scope
)
CELL_NAMES: tuple[str, ...] = tuple(cell_name(d, s) for d, s in CELLS)

# From the most permissive to the strictest: where two policies meet, the later wins.
_STRICTNESS = (RecordingMode.ALWAYS, RecordingMode.ON_DEMAND, RecordingMode.NEVER)


def cell_mode(
    default: RecordingMode,
    cells: Mapping[str, RecordingMode],
    direction: Direction,
    scope: Scope,
) -> RecordingMode:
    """The extension's mode for a call of this direction and scope: the cell set for
    it (``ext set 100 --outbound-external never``), else the extension's single
    ``recording`` mode, as FreePBX's and Wazo's per-direction settings fall back."""
    return cells.get(cell_name(direction, scope), default)


def strictest(*modes: RecordingMode) -> RecordingMode:
    """Where both ends of an internal call are ours, either extension may forbid: a
    ``never`` on one side is not overruled by an ``always`` on the other."""
    if not modes:
        raise ValueError("strictest() needs at least one mode")
    return max(modes, key=_STRICTNESS.index)


class RecordingPlan(StrEnum):
    RECORD = "record"  # start recording as soon as both parties are joined
    ON_DEMAND = "on-demand"  # allowed, but only when the agent asks (*1 / *2)
    NONE = "none"


@dataclass(frozen=True)
class RecordingDecision:
    plan: RecordingPlan
    reason: str

    @property
    def allowed(self) -> bool:
        return self.plan is not RecordingPlan.NONE


def caller_permits(basis: LegalBasis, outcome: ConsentOutcome) -> tuple[bool, str]:
    """Does the caller's answer, under this legal basis, allow the recording?

    Consent needs a "yes" (silence is not consent, GDPR art. 4(11), KVKK art. 3).
    Under legitimate interest or contract a caller's "no" is an objection we honour
    (GDPR art. 21); silence is not an objection. A legal obligation to record does not
    depend on the caller, which is why such routes should announce, not ask.
    """
    if basis is LegalBasis.CONSENT:
        if outcome is ConsentOutcome.GRANTED:
            return True, "caller consented"
        return False, f"legal basis is consent and the caller's answer was {outcome.value}"
    if basis is LegalBasis.LEGAL_OBLIGATION:
        return True, "recording is a legal obligation"
    if outcome is ConsentOutcome.DECLINED:
        return False, f"caller objected to recording under {basis.value}"
    if outcome is ConsentOutcome.WITHDRAWN:
        return False, f"caller withdrew from recording under {basis.value}"
    return True, f"legal basis is {basis.value}"


def outcome_of_key(basis: LegalBasis, digit: str) -> ConsentOutcome:
    """What 1 (go on) or 2 (no) means under the route's basis.

    Under consent, 1 is the caller's consent. Where the basis is legitimate interest or
    contract nobody is asked for consent (the disclosure offers only 2, the objection):
    a caller who presses 1 anyway has not consented to anything, only not objected, and
    the proof must not say otherwise (GDPR art. 7(1): a controller relying on consent
    must be able to show it; here it does not rely on it). 2 is a refusal under consent
    and an objection (GDPR art. 21) elsewhere, honoured either way.
    """
    if digit == "2":
        return ConsentOutcome.DECLINED
    if digit != "1":
        raise ValueError(f"key {digit!r} is no answer: only 1 and 2 are")
    if basis is LegalBasis.CONSENT:
        return ConsentOutcome.GRANTED
    return ConsentOutcome.NOT_OBJECTED


def key_answers(*, disclosure_began: bool) -> bool:
    """Can a key answer the disclosure? Only once its first audio has reached the caller.

    A key that arrived before that (under load the disclosure may start late, and a
    caller who knows the menu presses 1 at once) was pressed without being told what it
    means: it is not informed consent (GDPR art. 4(11) and 7, KVKK art. 3), nor an
    informed refusal. Such an "early key" is kept in the consent row's key history,
    marked as before the disclosure, and the caller hears the whole disclosure and is
    asked as usual; the first key after the disclosure began (barge-in included)
    answers.
    """
    return disclosure_began


def decide_recording(
    basis: LegalBasis,
    outcome: ConsentOutcome,
    extension_mode: RecordingMode,
    *,
    do_not_record: bool = False,
) -> RecordingDecision:
    """Combine the caller's side and the extension's side; either can forbid recording."""
    if do_not_record and basis is not LegalBasis.LEGAL_OBLIGATION:
        return RecordingDecision(RecordingPlan.NONE, "caller is on the do-not-record list")
    permitted, why = caller_permits(basis, outcome)
    if not permitted:
        return RecordingDecision(RecordingPlan.NONE, why)
    if extension_mode is RecordingMode.NEVER:
        return RecordingDecision(RecordingPlan.NONE, "extension never records")
    if extension_mode is RecordingMode.ON_DEMAND:
        return RecordingDecision(RecordingPlan.ON_DEMAND, f"{why}; extension records on demand")
    return RecordingDecision(RecordingPlan.RECORD, f"{why}; extension always records")


_STRICTNESS = (RecordingMode.ALWAYS, RecordingMode.ON_DEMAND, RecordingMode.NEVER)


def campaign_mode(extension_mode: RecordingMode, campaign: RecordingMode | None) -> RecordingMode:
    """The mode a campaign's call is recorded by: the stricter of the extension's and
    the campaign's, so either can forbid (a ``never`` campaign is never recorded, nor is
    an extension that never records; ``on-demand`` on either side waits for the agent's
    ``*1``). No campaign: the extension's."""
    if campaign is None:
        return extension_mode
    return max(extension_mode, campaign, key=_STRICTNESS.index)


def confirmation_prompt(basis: LegalBasis, outcome: ConsentOutcome) -> str | None:
    """The short prompt that tells the caller what their answer means, if any is true.

    A confirmation must never say something false: "your call will not be recorded" is
    only played when that is so, and "your consent is recorded" only where consent is
    the basis and was given. A caller who pressed 1 where no consent is asked hears a
    plain "thank you" (``confirm-not-objected``): whether the call is then recorded
    still depends on the extension, so the prompt promises nothing about it.
    """
    if outcome is ConsentOutcome.GRANTED and basis is LegalBasis.CONSENT:
        return "confirm-granted"
    if outcome in (ConsentOutcome.GRANTED, ConsentOutcome.NOT_OBJECTED):
        return "confirm-not-objected"
    permitted, _ = caller_permits(basis, outcome)
    if permitted:
        return None
    if outcome is ConsentOutcome.DECLINED:
        return "confirm-declined"
    if outcome is ConsentOutcome.TIMEOUT:
        return "confirm-timeout"
    if outcome is ConsentOutcome.WITHDRAWN:
        return "confirm-withdrawn"
    return None
