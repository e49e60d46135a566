"""The announcement's prompts from the catalogue (pbx_bridge/flow/announcement.py): one
playback per composed disclosure or notice, its version that of the sequence, every
segment kept for the proof; the language menu and choice by key or by country; and a
new language added as nothing but a prompts folder (a generated ``de``), built and
composed like the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pbx_bridge.config import LegalBasis, PromptSettings
from pbx_bridge.disclosure import DisclosureFacts, disclosure, full_notice, short_notice
from pbx_bridge.flow.announcement import (
    country_language,
    disclosure_prompt,
    full_notice_prompt,
    heard_segments,
    invalid_choice_prompt,
    language_for_key,
    language_menu,
    notice_prompt,
)
from pbx_bridge.flow.prompts import REQUIRED_PROMPTS, Prompt, PromptCatalogue, PromptMissing
from pbx_bridge.prompt_builder import build_prompts

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
FACTS = DisclosureFacts(LegalBasis.LEGITIMATE_INTEREST, 365, "048151623")


def _prompt(language: str, name: str) -> Prompt:
    tag = f"{language}/{name}"
    return Prompt(name, language, f"v-{tag}", f"a-{tag}", f"t-{tag}", 1.5,
                  f"sound:pbx-bridge/{tag}")


CATALOGUE = PromptCatalogue(
    [_prompt(language, name) for language in ("tr", "en") for name in REQUIRED_PROMPTS]
)


def test_a_composed_disclosure_is_one_playback_of_its_segments_in_order() -> None:
    prompt = disclosure_prompt(CATALOGUE, "en", FACTS)
    names = disclosure(FACTS)
    assert prompt.media == ",".join(f"sound:pbx-bridge/en/{n}" for n in names)
    assert [s.name for s in prompt.heard] == list(names)
    assert prompt.duration_s == pytest.approx(1.5 * len(names))
    # The digits of the reference, in order, are among what is heard.
    media = prompt.media.split(",")
    at = media.index("sound:pbx-bridge/en/reference-intro")
    assert media[at + 1:at + 10] == [f"sound:pbx-bridge/en/number-{d}" for d in "048151623"]
    # A different sequence (another reference, other days) is another version.
    other = disclosure_prompt(CATALOGUE, "en", DisclosureFacts(FACTS.legal_basis, 365, "148151623"))
    assert other.version != prompt.version and len(prompt.version) == 12
    assert disclosure_prompt(CATALOGUE, "en", FACTS).version == prompt.version
    proof = heard_segments(prompt)
    assert [(s.name, s.version, s.audio_sha256) for s in proof] == [
        (n, f"v-en/{n}", f"a-en/{n}") for n in names
    ]


def test_notice_then_full_notice_are_both_kept_as_heard() -> None:
    notice = notice_prompt(CATALOGUE, "tr", FACTS)
    full = full_notice_prompt(CATALOGUE, "tr", FACTS)
    assert [s.name for s in notice.heard] == list(short_notice(FACTS))
    assert [s.name for s in full.heard] == list(full_notice(FACTS))
    proof = heard_segments(notice, None, full)
    assert [s.name for s in proof] == [*short_notice(FACTS), *full_notice(FACTS)]
    single = CATALOGUE.get("tr", "busy")
    assert heard_segments(single)[0].version == "v-tr/busy"


def test_the_re_ask_fits_the_basis() -> None:
    assert invalid_choice_prompt(CATALOGUE, "en", LegalBasis.CONSENT).name == "invalid-choice"
    for basis in (LegalBasis.LEGITIMATE_INTEREST, LegalBasis.CONTRACT):
        assert invalid_choice_prompt(CATALOGUE, "en", basis).name == "invalid-choice-objection"


def test_the_language_menu_names_each_language_in_its_own_words_and_its_key() -> None:
    menu = language_menu(CATALOGUE, ["tr", "en"], ["1", "3"])
    assert menu.media.split(",") == [
        "sound:pbx-bridge/tr/language-choice", "sound:pbx-bridge/tr/number-1",
        "sound:pbx-bridge/en/language-choice", "sound:pbx-bridge/en/number-3",
    ]
    assert language_for_key("3", ["tr", "en"], ["1", "3"]) == "en"
    assert language_for_key("1", ["tr", "en"], ["1", "3"]) == "tr"
    assert language_for_key("2", ["tr", "en"], ["1", "3"]) is None
    assert language_for_key(None, ["tr", "en"], ["1", "3"]) is None
    with pytest.raises(PromptMissing, match="de/language-choice"):
        language_menu(CATALOGUE, ["tr", "de"], ["1", "2"])


@pytest.mark.parametrize(
    ("number", "offered", "expected"),
    [
        ("+442071838750", ("tr", "en"), "en"),  # London
        ("+4915123456789", ("tr", "en"), None),  # German, but de is not offered
        ("+4915123456789", (), "de"),  # no list on the route: any mapped language
        ("05321234567", ("tr", "en"), "tr"),  # national: the default region, TR
        ("+33612345678", ("tr", "en"), None),  # France: not in the map
        ("100", ("tr", "en"), None),  # an extension: no country
        (None, ("tr", "en"), None),
    ],
)
def test_the_callers_country_picks_the_language(
    number: str | None, offered: tuple[str, ...], expected: str | None
) -> None:
    by_region = {"GB": "en", "DE": "de", "TR": "tr"}
    assert country_language(number, "TR", by_region, offered) == expected


async def test_a_new_language_is_a_prompts_folder_and_nothing_else(tmp_path: Path) -> None:
    """prompts/de/ generated from the English texts: it builds, loads and composes."""
    texts = tmp_path / "prompts"
    shutil.copytree(PROMPTS / "en", texts / "de")
    (texts / "de" / "language-choice.txt").write_text("Für Deutsch drücken Sie\n")
    built = tmp_path / "built"
    manifest = await build_prompts(PromptSettings(dir=texts), built)
    assert {entry.language for entry in manifest.prompts.values()} == {"de"}
    catalogue = await PromptCatalogue.load(built, "pbx-bridge")
    catalogue.check_complete(["de"])
    prompt = disclosure_prompt(catalogue, "de", FACTS)
    assert prompt.media.startswith("sound:pbx-bridge/de/disclosure-intro,")
    assert all(s.language == "de" and s.audio_sha256 for s in prompt.heard)
    menu = language_menu(catalogue, ["de"], ["4"])
    assert menu.media == "sound:pbx-bridge/de/language-choice,sound:pbx-bridge/de/number-4"
    assert manifest.prompts["de/language-choice"].text == "Für Deutsch drücken Sie"
