"""The disclosure composed per route (pbx_bridge/disclosure.py): every combination of legal
basis, announcement, withdrawal offer, retention days and reference, checked against the
words the caller would hear (the prompt texts in prompts/en and prompts/tr)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from cli_support import clean_pbx_env, cli, migrated_config
from typer.testing import Result

from pbx_bridge.config import Announcement, LegalBasis, RouteSettings
from pbx_bridge.disclosure import (
    BASIS,
    CHOICES_CONSENT,
    CHOICES_OBJECTION,
    FULL_NOTICE_OFFER,
    INVALID_CHOICE,
    NOTICE,
    NUMBER_HUNDRED,
    NUMBER_THOUSAND,
    REFERENCE_INTRO,
    SEGMENT_PROMPTS,
    DisclosureFacts,
    UntruthfulRoute,
    asks,
    check_truthful,
    disclosure,
    full_notice,
    short_notice,
    spoken_number,
    untruthful,
)
from pbx_bridge.flow.prompts import REQUIRED_PROMPTS

__all__ = ["clean_pbx_env"]  # autouse fixture

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
DAYS = (0, 1, 7, 60, 365, 730, 1000, 2555, 36500)
REFERENCES = (None, "123456789", "000000000")
TR_CONSENT_CLAIM = "yalnızca açık rızanızla"  # noqa: RUF001 (Turkish dotless i)
TR_CONSENT_OFFER = "onaylıyorsanız 1"  # noqa: RUF001


def text(language: str, name: str) -> str:
    return (PROMPTS / language / f"{name}.txt").read_text(encoding="utf-8").strip()


def heard(language: str, names: tuple[str, ...]) -> str:
    return " ".join(text(language, name) for name in names)


def number_of(names: tuple[str, ...]) -> int:
    """Read spoken number prompts back into the number (what a listener adds up)."""
    total, group, small = 0, 0, 0  # before "thousand", this group, since the last word
    for name in names:
        if name == NUMBER_THOUSAND:
            total, group, small = total + (group + small) * 1000, 0, 0
        elif name == NUMBER_HUNDRED:
            group, small = group + small * 100, 0
        elif name == "number-1000":
            total += 1000
        else:
            small += int(name.removeprefix("number-"))
    return total + group + small


def test_every_number_up_to_forty_thousand_is_spoken_exactly() -> None:
    for n in range(0, 40_001):
        names = spoken_number(n)
        assert all(name in SEGMENT_PROMPTS for name in names), (n, names)
        assert number_of(names) == n, (n, names)
    assert spoken_number(365) == ("number-3", NUMBER_HUNDRED, "number-60", "number-5")
    assert spoken_number(100) == ("number-100",)  # "yüz", never "bir yüz"
    assert spoken_number(1060) == ("number-1000", "number-60")
    assert spoken_number(36500) == (
        "number-30", "number-6", NUMBER_THOUSAND, "number-5", NUMBER_HUNDRED)
    with pytest.raises(ValueError, match="cannot speak"):
        spoken_number(-1)


def test_every_segment_is_a_required_prompt_with_a_text_in_each_language() -> None:
    for language in ("en", "tr"):
        for name in SEGMENT_PROMPTS:
            assert name in REQUIRED_PROMPTS
            assert text(language, name), (language, name)


COMBINATIONS = list(itertools.product(LegalBasis, Announcement, (False, True)))


@pytest.mark.parametrize(("basis", "announcement", "withdrawal"), COMBINATIONS)
def test_route_settings_that_would_lie_are_refused_with_the_reason(
    basis: LegalBasis, announcement: Announcement, withdrawal: bool
) -> None:
    problems = untruthful(announcement, basis, offer_withdrawal=withdrawal)
    expected = []
    if basis is LegalBasis.LEGAL_OBLIGATION and announcement in (
        Announcement.BEFORE_CONNECT, Announcement.ON_CONNECT
    ):
        expected.append("a choice that changes nothing")
    if basis is LegalBasis.CONSENT and announcement is Announcement.NOTICE_ONLY:
        expected.append("no call is ever recorded")
    if withdrawal and basis is not LegalBasis.CONSENT:
        expected.append("key 8 withdraws consent")
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem
    if expected:
        with pytest.raises(UntruthfulRoute, match=re.escape(expected[0])):
            check_truthful(announcement, basis, offer_withdrawal=withdrawal)
        with pytest.raises(ValueError, match=re.escape(expected[0])):
            RouteSettings(announcement=announcement, legal_basis=basis,
                          offer_withdrawal=withdrawal)
    else:
        check_truthful(announcement, basis, offer_withdrawal=withdrawal)
        RouteSettings(announcement=announcement, legal_basis=basis,
                      offer_withdrawal=withdrawal)


@pytest.fixture(params=list(itertools.product(LegalBasis, DAYS, REFERENCES)),
                ids=lambda p: f"{p[0].value}-{p[1]}d-{p[2]}")
def facts(request: pytest.FixtureRequest) -> DisclosureFacts:
    """Every legal basis, with retention periods and references to say."""
    basis, days, reference = request.param
    return DisclosureFacts(legal_basis=basis, retention_days=days, reference=reference)


def test_the_disclosure_says_only_what_is_true(facts: DisclosureFacts) -> None:
    basis, days, reference = facts.legal_basis, facts.retention_days, facts.reference
    asked = disclosure(facts)
    # The basis said is this route's, and only it.
    assert [n for n in asked if n.startswith("basis-")] == [BASIS[basis]]
    for language in ("en", "tr"):
        words = heard(language, asked)
        consent_claim = {"en": "only with your explicit consent", "tr": TR_CONSENT_CLAIM}
        refusal = {"en": "Press 2", "tr": "2 tuşuna"}
        consent_offer = {"en": "Press 1", "tr": TR_CONSENT_OFFER}
        assert (consent_claim[language] in words) is (basis is LegalBasis.CONSENT)
        assert (consent_offer[language] in words) is (basis is LegalBasis.CONSENT)
        # 2 changes something under consent (refusal) and legitimate interest or contract
        # (an objection is honoured); under a legal obligation it is never offered.
        assert (refusal[language] in words) is (basis is not LegalBasis.LEGAL_OBLIGATION)
    choices = [n for n in asked if n.startswith("choices-")]
    assert choices == {
        LegalBasis.CONSENT: [CHOICES_CONSENT],
        LegalBasis.LEGITIMATE_INTEREST: [CHOICES_OBJECTION],
        LegalBasis.CONTRACT: [CHOICES_OBJECTION],
        LegalBasis.LEGAL_OBLIGATION: [],
    }[basis]
    assert INVALID_CHOICE[basis] in REQUIRED_PROMPTS
    assert "Press 1" not in text("en", INVALID_CHOICE[basis]) or basis is LegalBasis.CONSENT
    _says_days_and_reference(asked, days, reference)
    assert asked[: len(full_notice(facts))] == full_notice(facts)


def test_the_short_notice_says_why_how_long_the_reference_and_key_0(
    facts: DisclosureFacts,
) -> None:
    basis, days, reference = facts.legal_basis, facts.retention_days, facts.reference
    notice = short_notice(facts)
    assert notice[0] == NOTICE[basis]
    assert notice[-1] == FULL_NOTICE_OFFER
    assert not any(n.startswith("choices-") for n in notice)
    assert "Press 0" in heard("en", notice) and "0 tuşuna" in heard("tr", notice)
    assert "Press 2" not in heard("en", notice)
    _says_days_and_reference(notice, days, reference)
    full = full_notice(facts)
    assert not any(n.startswith("choices-") for n in full)
    assert BASIS[basis] in full


def _says_days_and_reference(names: tuple[str, ...], days: int, reference: str | None) -> None:
    if days == 0:
        assert "retention-none" in names and "retention-before" not in names
    else:
        start = names.index("retention-before") + 1
        end = next(i for i in range(start, len(names)) if not names[i].startswith("number-"))
        assert number_of(names[start:end]) == days
        assert names[end] == ("retention-after-one" if days == 1 else "retention-after")
    if reference is None:
        assert REFERENCE_INTRO not in names
    else:
        start = names.index(REFERENCE_INTRO) + 1
        digits = "".join(n.removeprefix("number-") for n in names[start:start + 9])
        assert digits == reference


def test_asking_routes_are_those_with_a_question_that_changes_something() -> None:
    for basis, announcement in itertools.product(LegalBasis, Announcement):
        expected = announcement in (Announcement.BEFORE_CONNECT, Announcement.ON_CONNECT) and (
            basis is not LegalBasis.LEGAL_OBLIGATION)
        assert asks(announcement, basis) is expected


# -- route set refuses what would lie; languages offered need their prompts -----------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return migrated_config(tmp_path, f'[prompts]\ndir = "{PROMPTS}"\n')


def _refused(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: route 2125550100: route would mislead the caller")
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_route_set_refuses_settings_that_would_make_the_prompt_lie(config: Path) -> None:
    _refused(cli(config, "route", "set", "2125550100", "--legal-basis", "legal-obligation"),
             "a choice that changes nothing", "use --announcement notice-only")
    _refused(cli(config, "route", "set", "2125550100", "--announcement", "notice-only"),
             "nobody is asked, so no call is ever recorded")
    ok = cli(config, "route", "set", "2125550100", "--legal-basis", "legal-obligation",
             "--announcement", "notice-only")
    assert ok.exit_code == 0, ok.output
    # A later partial change is judged with the fields it keeps.
    _refused(cli(config, "route", "set", "2125550100", "--announcement", "before-connect"),
             "a choice that changes nothing")
    _refused(cli(config, "route", "set", "2125550100", "--offer-withdrawal"),
             "key 8 withdraws consent", "a legal obligation records anyway")
    listed = cli(config, "route", "list").stdout
    assert "notice-only" in listed and "legal-obligation" in listed  # left as it was


def test_route_languages_need_their_prompts_and_one_key_each(
    config: Path, tmp_path: Path
) -> None:
    result = cli(config, "route", "set", "2125550100", "--languages", "tr,en",
                 "--language-keys", "1,3")
    assert result.exit_code == 0, result.output
    assert "language chosen by key (1: tr, 3: en)" in result.stdout
    missing = cli(config, "route", "set", "2125550100", "--languages", "tr,de")
    assert missing.exit_code == 2
    assert f"no prompts folder {PROMPTS / 'de'}" in missing.stderr
    for args, fragment in (
        (["--languages", "tr,en", "--language-keys", "1"], "1 keys for 2 languages"),
        (["--languages", "tr,en", "--language-keys", "3,3"], "one distinct digit each"),
        (["--languages", "en"], "--language tr is not among --languages en"),
    ):
        refused = cli(config, "route", "set", "2125550100", *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert fragment in refused.stderr, (args, refused.stderr)
    by_country = cli(config, "route", "set", "2125550100", "--language-by-country")
    assert by_country.exit_code == 0 and "follows the caller's country" in by_country.stdout
