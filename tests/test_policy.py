"""The recording decision is a legal rule: every combination is spelled out here."""

from __future__ import annotations

import pytest

from pbx_bridge.config import LegalBasis, RecordingMode
from pbx_bridge.flow.policy import (
    CELL_NAMES,
    CELLS,
    ConsentOutcome,
    Direction,
    RecordingPlan,
    Scope,
    cell_mode,
    confirmation_prompt,
    decide_recording,
    outcome_of_key,
    strictest,
)

G, D, T, N, NO = (
    ConsentOutcome.GRANTED,
    ConsentOutcome.DECLINED,
    ConsentOutcome.TIMEOUT,
    ConsentOutcome.NOT_ASKED,
    ConsentOutcome.NOT_OBJECTED,
)


@pytest.mark.parametrize(
    ("basis", "outcome", "permitted"),
    [
        (LegalBasis.CONSENT, G, True),
        (LegalBasis.CONSENT, D, False),
        (LegalBasis.CONSENT, T, False),  # silence is not consent
        (LegalBasis.CONSENT, N, False),
        (LegalBasis.LEGITIMATE_INTEREST, G, True),
        (LegalBasis.LEGITIMATE_INTEREST, D, False),  # an objection is honoured
        (LegalBasis.LEGITIMATE_INTEREST, T, True),
        (LegalBasis.LEGITIMATE_INTEREST, N, True),
        (LegalBasis.LEGITIMATE_INTEREST, NO, True),  # pressed 1: went on, no objection
        (LegalBasis.CONTRACT, NO, True),
        (LegalBasis.CONSENT, NO, False),  # never arises: "not objected" is no consent
        (LegalBasis.CONTRACT, D, False),
        (LegalBasis.CONTRACT, N, True),
        (LegalBasis.LEGAL_OBLIGATION, D, True),  # the law requires it whatever the caller says
        (LegalBasis.LEGAL_OBLIGATION, T, True),
    ],
)
def test_caller_side(basis: LegalBasis, outcome: ConsentOutcome, permitted: bool) -> None:
    decision = decide_recording(basis, outcome, RecordingMode.ALWAYS)
    assert decision.allowed is permitted
    assert decision.plan is (RecordingPlan.RECORD if permitted else RecordingPlan.NONE)


def test_extension_never_wins_over_consent() -> None:
    decision = decide_recording(LegalBasis.CONSENT, G, RecordingMode.NEVER)
    assert decision.plan is RecordingPlan.NONE
    assert "never" in decision.reason


def test_on_demand_only_when_the_caller_permits() -> None:
    assert decide_recording(LegalBasis.CONSENT, G, RecordingMode.ON_DEMAND).plan is (
        RecordingPlan.ON_DEMAND
    )
    assert decide_recording(LegalBasis.CONSENT, D, RecordingMode.ON_DEMAND).plan is (
        RecordingPlan.NONE
    )


def test_do_not_record_list_beats_consent_but_not_a_legal_obligation() -> None:
    assert not decide_recording(
        LegalBasis.CONSENT, G, RecordingMode.ALWAYS, do_not_record=True
    ).allowed
    assert decide_recording(
        LegalBasis.LEGAL_OBLIGATION, N, RecordingMode.ALWAYS, do_not_record=True
    ).allowed


@pytest.mark.parametrize(
    ("basis", "outcome", "prompt"),
    [
        (LegalBasis.CONSENT, G, "confirm-granted"),
        (LegalBasis.CONSENT, D, "confirm-declined"),
        (LegalBasis.CONSENT, T, "confirm-timeout"),
        # Under legitimate interest silence is recorded: "will not be recorded" would lie.
        (LegalBasis.LEGITIMATE_INTEREST, T, None),
        (LegalBasis.LEGITIMATE_INTEREST, D, "confirm-declined"),
        # 1 where no consent is asked: "thank you", never "your consent is recorded"
        # (also for a row stored as "granted" before the two were told apart).
        (LegalBasis.LEGITIMATE_INTEREST, NO, "confirm-not-objected"),
        (LegalBasis.CONTRACT, NO, "confirm-not-objected"),
        (LegalBasis.LEGITIMATE_INTEREST, G, "confirm-not-objected"),
        (LegalBasis.CONTRACT, D, "confirm-declined"),
        (LegalBasis.LEGAL_OBLIGATION, D, None),
    ],
)
def test_confirmation_never_says_something_false(
    basis: LegalBasis, outcome: ConsentOutcome, prompt: str | None
) -> None:
    assert confirmation_prompt(basis, outcome) == prompt


@pytest.mark.parametrize(
    ("basis", "digit", "outcome"),
    [
        (LegalBasis.CONSENT, "1", G),
        (LegalBasis.CONSENT, "2", D),
        (LegalBasis.LEGITIMATE_INTEREST, "1", NO),  # nobody asked for consent: none given
        (LegalBasis.LEGITIMATE_INTEREST, "2", D),  # the objection
        (LegalBasis.CONTRACT, "1", NO),
        (LegalBasis.CONTRACT, "2", D),
    ],
)
def test_what_a_key_means_depends_on_the_basis(
    basis: LegalBasis, digit: str, outcome: ConsentOutcome
) -> None:
    assert outcome_of_key(basis, digit) is outcome


def test_only_1_and_2_are_answers() -> None:
    with pytest.raises(ValueError, match="key '9' is no answer"):
        outcome_of_key(LegalBasis.CONSENT, "9")


# -- the extension's policy per direction and scope ------------------------------------

def test_every_cell_unset_follows_the_extension_mode() -> None:
    for mode in RecordingMode:
        for direction, scope in CELLS:
            assert cell_mode(mode, {}, direction, scope) is mode


def test_a_cell_set_applies_to_its_direction_and_scope_only() -> None:
    cells = {"outbound_external": RecordingMode.NEVER}
    modes = {(d, s): cell_mode(RecordingMode.ALWAYS, cells, d, s) for d, s in CELLS}
    assert modes == {
        (Direction.INBOUND, Scope.INTERNAL): RecordingMode.ALWAYS,
        (Direction.INBOUND, Scope.EXTERNAL): RecordingMode.ALWAYS,
        (Direction.OUTBOUND, Scope.INTERNAL): RecordingMode.ALWAYS,
        (Direction.OUTBOUND, Scope.EXTERNAL): RecordingMode.NEVER,
    }
    assert CELL_NAMES == ("inbound_internal", "inbound_external", "outbound_internal",
                          "outbound_external")


def test_the_strictest_side_of_an_internal_call_wins() -> None:
    always, demand, never = RecordingMode.ALWAYS, RecordingMode.ON_DEMAND, RecordingMode.NEVER
    assert strictest(always, never) is never
    assert strictest(never, always) is never
    assert strictest(always, demand) is demand
    assert strictest(always, always) is always
    with pytest.raises(ValueError):
        strictest()


def test_a_never_cell_forbids_what_the_callee_allows() -> None:
    """decide_recording takes the cell: an outbound-external ``never`` records nothing
    even where the callee consented; an ``on-demand`` cell waits for the agent."""
    cells = {"outbound_external": RecordingMode.NEVER,
             "outbound_internal": RecordingMode.ON_DEMAND}
    never = cell_mode(RecordingMode.ALWAYS, cells, Direction.OUTBOUND, Scope.EXTERNAL)
    decision = decide_recording(LegalBasis.CONSENT, ConsentOutcome.GRANTED, never)
    assert decision.plan is RecordingPlan.NONE and decision.reason == "extension never records"
    demand = cell_mode(RecordingMode.ALWAYS, cells, Direction.OUTBOUND, Scope.INTERNAL)
    assert decide_recording(LegalBasis.LEGITIMATE_INTEREST, ConsentOutcome.NOT_ASKED,
                            demand).plan is RecordingPlan.ON_DEMAND
