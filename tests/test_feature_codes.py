"""The agent's feature codes (``*`` then digits) and the decisions around them: pure."""

from __future__ import annotations

import pytest

from pbx_bridge.calls.pauses import offset_s
from pbx_bridge.config import CallSettings, LegalBasis
from pbx_bridge.flow.agent_features import feature_codes, retention_choice_refused
from pbx_bridge.flow.feature_codes import (
    FeatureAction,
    FeatureCodeParser,
    FeatureKind,
    InvalidFeatureCodes,
    build_codes,
)

PAUSE = FeatureAction(FeatureKind.PAUSE)
RESUME = FeatureAction(FeatureKind.RESUME)


def parser(retention: dict[str, str] | None = None, window: float = 3.0) -> FeatureCodeParser:
    codes = build_codes(pause="5", resume="6", retention=retention or {"7": "sales",
                                                                      "0": "discard"})
    return FeatureCodeParser(codes, window)


def feed_all(p: FeatureCodeParser, keys: list[tuple[float, str]]) -> list[FeatureAction]:
    found = []
    for at, digit in keys:
        action = p.feed(digit, at)
        if action is not None:
            found.append(action)
    return found


def test_each_code_completes_on_its_last_digit() -> None:
    p = parser()
    assert feed_all(p, [(0.0, "*"), (0.3, "5")]) == [PAUSE]
    assert feed_all(p, [(5.0, "*"), (5.2, "6")]) == [RESUME]
    assert feed_all(p, [(9.0, "*"), (9.1, "7")]) == [
        FeatureAction(FeatureKind.RETENTION, "sales")
    ]
    assert feed_all(p, [(12.0, "*"), (12.1, "0")]) == [
        FeatureAction(FeatureKind.RETENTION, "discard")
    ]
    assert feed_all(p, [(20.0, "*"), (20.1, "1"), (30.0, "*"), (30.1, "2")]) == [
        FeatureAction(FeatureKind.RECORD_START), FeatureAction(FeatureKind.RECORD_STOP)
    ]


def test_digits_without_a_star_or_too_late_do_nothing() -> None:
    p = parser()
    assert feed_all(p, [(0.0, "5"), (1.0, "6"), (2.0, "7")]) == []
    assert feed_all(p, [(10.0, "*"), (13.5, "5")]) == []  # past the 3 s window
    assert p.waiting_until() is None
    # A digit leading to no code forgets the star: the next digit is not read as a code.
    assert feed_all(p, [(20.0, "*"), (20.2, "9"), (20.4, "5")]) == []


def test_a_second_star_starts_over() -> None:
    assert feed_all(parser(), [(0.0, "*"), (0.5, "*"), (0.8, "5")]) == [PAUSE]


def test_a_code_that_is_the_start_of_a_longer_one_waits_for_the_window() -> None:
    p = parser({"7": "sales", "77": "legal"})
    assert feed_all(p, [(0.0, "*"), (0.2, "7")]) == []
    assert p.waiting_until() == pytest.approx(3.2)
    assert p.expire(3.0) is None  # still within the window
    assert p.expire(3.3) == FeatureAction(FeatureKind.RETENTION, "sales")
    assert p.waiting_until() is None
    assert feed_all(p, [(10.0, "*"), (10.2, "7"), (10.5, "7")]) == [
        FeatureAction(FeatureKind.RETENTION, "legal")
    ]
    # The waiting code completes when the next star comes after the window.
    assert feed_all(p, [(20.0, "*"), (20.2, "7"), (24.0, "*"), (24.2, "5")]) == [
        FeatureAction(FeatureKind.RETENTION, "sales"), PAUSE
    ]


@pytest.mark.parametrize(
    ("pause", "resume", "retention", "named"),
    [
        ("5", "5", {}, "*5"),
        ("5", "6", {"1": "sales"}, "*1"),
        ("5", "6", {"6": "sales"}, "*6"),
        ("x", "6", {}, "*x"),
        ("5", "6", {"": "sales"}, "*"),
    ],
)
def test_codes_that_clash_are_refused_naming_the_code(
    pause: str, resume: str, retention: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidFeatureCodes, match=f"feature code \\{named}"):
        build_codes(pause=pause, resume=resume, retention=retention)


def test_configuration_refuses_clashing_codes_and_bad_class_names() -> None:
    with pytest.raises(ValueError, match=r"\*5 is given twice"):
        CallSettings(retention_codes={"5": "sales"})
    with pytest.raises(ValueError, match="no retention class name"):
        CallSettings(retention_codes={"7": "Sales Team"})
    settings = CallSettings(retention_codes={"7": "sales"})
    assert feature_codes(settings)["7"] == FeatureAction(FeatureKind.RETENTION, "sales")
    assert feature_codes(settings)["5"] == PAUSE


def test_a_legal_obligation_cannot_be_shortened_by_the_agent() -> None:
    refused = retention_choice_refused(LegalBasis.LEGAL_OBLIGATION, 3650, 0)
    assert refused is not None and "legal obligation" in refused
    assert retention_choice_refused(LegalBasis.LEGAL_OBLIGATION, 3650, 3650) is None
    assert retention_choice_refused(LegalBasis.LEGAL_OBLIGATION, 60, 365) is None
    assert retention_choice_refused(LegalBasis.CONSENT, 60, 0) is None
    assert retention_choice_refused(LegalBasis.LEGITIMATE_INTEREST, 60, 0) is None


def test_pause_offsets_count_from_the_recordings_start() -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert offset_s(start, start + timedelta(seconds=4, milliseconds=250)) == 4.25
    assert offset_s(start, start - timedelta(seconds=1)) == 0.0


# -- transfers: a code, then the extension, then # ----------------------------------------

BLIND = FeatureKind.BLIND_TRANSFER
ATTENDED = FeatureKind.ATTENDED_TRANSFER


def transfer_parser(target_s: float = 3.0) -> FeatureCodeParser:
    codes = build_codes(pause="5", resume="6", retention={"7": "sales"},
                        blind_transfer="8", attended_transfer="9")
    return FeatureCodeParser(codes, 3.0, target_s)


def test_a_transfer_code_takes_the_extension_up_to_the_hash() -> None:
    p = transfer_parser()
    assert feed_all(p, [(0.0, "*"), (0.2, "8"), (0.5, "1"), (0.7, "0"), (0.9, "1")]) == []
    assert p.waiting_until() == 0.9 + 3.0  # still typing the extension
    assert feed_all(p, [(1.1, "#")]) == [FeatureAction(BLIND, extension="101")]
    assert p.waiting_until() is None
    # Digits after the code are the extension, even those that are codes themselves.
    assert feed_all(p, [(5.0, "*"), (5.1, "9"), (5.2, "5"), (5.3, "6"), (5.4, "#")]) == [
        FeatureAction(ATTENDED, extension="56")
    ]


def test_the_extension_is_dialled_once_the_agent_stops_typing() -> None:
    """As Asterisk's transferdigittimeout: no # needed; nothing typed forgets the code."""
    p = transfer_parser(target_s=2.0)
    assert feed_all(p, [(0.0, "*"), (0.1, "8"), (0.4, "1"), (0.6, "0"), (0.8, "2")]) == []
    assert p.expire(2.5) is None
    assert p.expire(2.9) == FeatureAction(BLIND, extension="102")
    assert feed_all(p, [(10.0, "*"), (10.1, "9")]) == []
    assert p.expire(13.0) is None and p.waiting_until() is None
    assert feed_all(p, [(20.0, "5")]) == []  # a digit after that is no code


def test_a_star_abandons_the_extension_and_an_empty_one_is_handed_on() -> None:
    p = transfer_parser()
    assert feed_all(p, [(0.0, "*"), (0.1, "8"), (0.2, "1"), (0.3, "*"), (0.4, "5")]) == [PAUSE]
    # "*8#": the flow tells the agent there is no extension, rather than doing nothing.
    assert feed_all(p, [(5.0, "*"), (5.1, "8"), (5.2, "#")]) == [FeatureAction(BLIND)]
    # A digit past any extension's length ends the typing; the flow refuses it.
    keys = [(10.0, "*"), (10.1, "9")] + [(10.2 + i / 100, "1") for i in range(21)]
    assert feed_all(p, keys) == [FeatureAction(ATTENDED, extension="1" * 21)]


@pytest.mark.parametrize(
    ("blind", "attended", "retention", "named"),
    [
        ("8", "8", {}, r"\*8 is given twice"),
        ("8", "9", {"81": "sales"}, r"\*8 \(blind-transfer\) is followed by an extension"),
        ("77", "9", {"7": "sales"}, r"\*77 \(blind-transfer\)"),
        ("8#", "9", {}, r"\*8# \(blind-transfer\): # ends the extension"),
    ],
)
def test_transfer_codes_that_would_swallow_another_are_refused(
    blind: str, attended: str, retention: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidFeatureCodes, match=named):
        build_codes(pause="5", resume="6", retention=retention, blind_transfer=blind,
                    attended_transfer=attended)


def test_transfers_are_on_by_default_and_can_be_turned_off() -> None:
    codes = feature_codes(CallSettings())
    assert (codes["8"].kind, codes["9"].kind) == (BLIND, ATTENDED)
    off = feature_codes(CallSettings(blind_transfer_code="", attended_transfer_code=""))
    assert "8" not in off and "9" not in off
    with pytest.raises(ValueError, match=r"\*8 is given twice"):
        CallSettings(retention_codes={"8": "sales"})
