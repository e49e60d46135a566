"""The prompts of a call's announcement, built from the catalogue: the composed disclosure
or notice (``pbx_bridge.disclosure`` chooses the segments), the re-ask that fits the legal
basis, the language menu, and the proof of every segment heard.

Each is one :class:`Prompt` whose media lists its segments, so Asterisk plays it as one
playback (one request, one PlaybackStarted, one PlaybackFinished; a key stops it whole)
and the flow handles it like any single prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pbx_bridge.calls.journal import HeardSegment
from pbx_bridge.config import Announcement, LegalBasis
from pbx_bridge.disclosure import (
    INVALID_CHOICE,
    KEY_FULL_NOTICE,
    LANGUAGE_CHOICE,
    DisclosureFacts,
    disclosure,
    full_notice,
    short_notice,
    spoken_number,
)
from pbx_bridge.flow.prompts import Prompt, PromptCatalogue
from pbx_bridge.subjects.numbers import region_of

__all__ = [
    "KEY_FULL_NOTICE",
    "country_language",
    "disclosure_prompt",
    "full_notice_prompt",
    "heard_after_menu",
    "heard_segments",
    "invalid_choice_prompt",
    "language_for_key",
    "language_menu",
    "notice_prompt",
]


def _compose(
    prompts: PromptCatalogue, name: str, language: str, names: Sequence[str]
) -> Prompt:
    return prompts.compose(name, [(language, part) for part in names], language)


def disclosure_prompt(prompts: PromptCatalogue, language: str, facts: DisclosureFacts) -> Prompt:
    """The disclosure an asking route plays: the full notice and the keys that count."""
    return _compose(prompts, "disclosure", language, disclosure(facts))


def notice_prompt(prompts: PromptCatalogue, language: str, facts: DisclosureFacts) -> Prompt:
    """A notice-only route's short notice, ending with "press 0 for the full notice"."""
    return _compose(prompts, "notice", language, short_notice(facts))


def full_notice_prompt(
    prompts: PromptCatalogue, language: str, facts: DisclosureFacts
) -> Prompt:
    """What key 0 plays on a notice-only route: the whole notice, no question."""
    return _compose(prompts, "full-notice", language, full_notice(facts))


def invalid_choice_prompt(
    prompts: PromptCatalogue, language: str, basis: LegalBasis
) -> Prompt:
    """The re-ask: "1, 2 or 9" under consent, "2 to object or 9" where 2 objects."""
    return prompts.get(language, INVALID_CHOICE[basis])


def language_menu(
    prompts: PromptCatalogue, languages: Sequence[str], keys: Sequence[str]
) -> Prompt:
    """"(Turkish) press 1. For English, press 3.": each language's choice in its
    own words, followed by its key as a number prompt of that language."""
    parts: list[tuple[str, str]] = []
    for language, key in zip(languages, keys, strict=True):
        parts.append((language, LANGUAGE_CHOICE))
        parts.extend((language, name) for name in spoken_number(int(key)))
    return prompts.compose("language-choice", parts, languages[0])


def language_for_key(
    digit: str | None, languages: Sequence[str], keys: Sequence[str]
) -> str | None:
    """The language whose key this is (None: no key, or not one of the menu's)."""
    for language, key in zip(languages, keys, strict=True):
        if digit == key:
            return language
    return None


def country_language(
    number: str | None,
    default_region: str,
    by_region: Mapping[str, str],
    offered: Sequence[str],
) -> str | None:
    """The language of the caller's country (``[prompts] country_languages``), if the
    route offers it (or offers no list, then any built language the map names)."""
    region = region_of(number, default_region)
    language = by_region.get(region) if region is not None else None
    if language is None or (offered and language not in offered):
        return None
    return language


def heard_after_menu(
    prompts: PromptCatalogue, menu: Prompt | None, heard: Prompt
) -> Prompt:
    """What the proof keeps when a language menu came first: one sequence, menu and
    ``heard`` (keeping its name), whose version and sha256 cover every segment the
    caller heard, as its segments list them."""
    if menu is None:
        return heard
    return prompts.compose(
        heard.name, [(p.language, p.name) for p in (*menu.heard, *heard.heard)],
        heard.language,
    )


def heard_segments(*prompts: Prompt | None) -> tuple[HeardSegment, ...]:
    """Every single prompt heard, in order, as the consent row's proof."""
    return tuple(
        HeardSegment(part.name, part.version, part.audio_sha256, part.text_sha256)
        for prompt in prompts
        if prompt is not None
        for part in prompt.heard
    )


def announces(announcement: Announcement) -> bool:
    """Does the caller hear anything before being connected (asked or told)?"""
    return announcement is not Announcement.NONE
