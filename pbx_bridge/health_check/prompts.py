"""The prompts the flow plays: built, visible to Asterisk in every language a caller may
hear, and (where Asterisk's sounds folder is readable here) the very audio the manifest
vouches for, since a consent row proves which words were heard by that sha256.

A caller may hear the service's own languages, and every language a route offers (its
``language``, its ``languages`` menu) or the caller's country picks (``[prompts]
country_languages``): a language added as a prompts folder and offered by a route, but
built incomplete, would fail that route's callers mid-call, so each missing prompt is
named with the routes that offer its language.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pbx_bridge.ari.errors import AriError, AriNotFound
from pbx_bridge.ari.models import Sound
from pbx_bridge.ari.rest import AriClient
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import CheckSettings, Language, PromptSettings
from pbx_bridge.flow.prompts import (
    MANIFEST_NAME,
    REQUIRED_PROMPTS,
    Manifest,
    ManifestEntry,
    PromptCatalogueError,
)
from pbx_bridge.health_check.findings import Finding, ok, problem, warning
from storage.audio_facts import digest_file

BUILD_HINT = "`pbx-bridge prompts build`"
LANGUAGES: tuple[str, ...] = tuple(language.value for language in Language)


# -- decisions -----------------------------------------------------------------------------

def sound_lookup(sound_prefix: str, language: str, name: str) -> tuple[str, str]:
    """(sound id, index "language") under which Asterisk's media index knows the prompt
    played as sound:{prefix}/{language}/{name}: the first folder counts as the language."""
    parts = [*sound_prefix.strip("/").split("/"), language, name]
    return "/".join(parts[1:]), parts[0]


def missing_from_manifest(
    manifest: Manifest, languages: Iterable[str] = LANGUAGES
) -> list[str]:
    return [f"{language}/{name}" for language in languages for name in REQUIRED_PROMPTS
            if f"{language}/{name}" not in manifest.prompts]


# Who offers each language a caller may hear: "route 2125550100", "the default route",
# "[prompts] country_languages GB".
Offered = Mapping[str, tuple[str, ...]]


def offered_languages(
    routes: Iterable[ResolvedRoute],
    default_language: str,
    country_languages: Mapping[str, str],
) -> dict[str, tuple[str, ...]]:
    """Every language a caller may hear beside the service's own, and who offers it."""
    offered: dict[str, list[str]] = {}

    def add(language: str, who: str) -> None:
        offerers = offered.setdefault(language, [])
        if who not in offerers:
            offerers.append(who)

    add(default_language, "the default route")
    for route in routes:
        for language in (route.language.value, *route.languages):
            add(language, f"route {route.did}")
    for region in sorted(country_languages):
        add(country_languages[region], f"[prompts] country_languages {region}")
    return {language: tuple(who) for language, who in offered.items()}


def _who(offerers: Sequence[str], limit: int = 3) -> str:
    """"route 2125550100, route 2125550101 and 4 more": enough to find them."""
    shown = ", ".join(offerers[:limit])
    rest = len(offerers) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def language_findings(manifest: Manifest, offered: Offered) -> list[Finding]:
    """A line per prompt missing in a language a route (or a country) offers; one line for
    a language with nothing built. The service's own languages are the manifest check's
    (the service does not start without them)."""
    findings = []
    for language, offerers in offered.items():
        if language in LANGUAGES:
            continue
        who = _who(offerers)
        built = {e.name for e in manifest.prompts.values() if e.language == language}
        if not built:
            findings.append(problem(
                "prompts.languages", f"language {language} (offered by {who}) has no prompts "
                f"built: add prompts/{language}/ with every prompt translated and run "
                f"{BUILD_HINT}, or stop offering it", language=language,
                offered_by=list(offerers)))
            continue
        findings.extend(
            problem("prompts.languages", f"prompt {language}/{name} is not built, and "
                    f"{language} is offered by {who}: add prompts/{language}/{name}.txt and "
                    f"run {BUILD_HINT}", prompt=f"{language}/{name}",
                    offered_by=list(offerers))
            for name in REQUIRED_PROMPTS if name not in built
        )
    if findings:
        return findings
    others = [language for language in offered if language not in LANGUAGES]
    if not others:
        return [ok("prompts.languages", "no route offers a language beside the service's "
                   f"own ({', '.join(LANGUAGES)})")]
    return [ok("prompts.languages", "every language offered is built: " + ", ".join(
        f"{language} ({_who(offered[language], 1)})" for language in others))]


def _offered_by(language: str, offered: Offered) -> str:
    """" (de is offered by route 2125550100)" for a language beside the service's own."""
    if language in LANGUAGES or language not in offered:
        return ""
    return f" ({language} is offered by {_who(offered[language])})"


def visible(sound: Sound | None, index_language: str) -> bool:
    return sound is not None and index_language in sound.languages


def hash_findings(
    installed: Path,
    entries: Sequence[ManifestEntry],
    digests: Mapping[str, str | None],
    offered: Offered | None = None,
) -> list[Finding]:
    """`digests`: each entry's file → its sha256 there, or None when it is not there."""
    findings = []
    for entry in entries:
        path = installed / entry.file
        digest = digests.get(entry.file)
        by = _offered_by(entry.language, offered or {})
        if digest is None:
            findings.append(problem(
                "prompts.files", f"prompt {entry.language}/{entry.name}{by}: {path} is "
                f"missing: install the build there ({BUILD_HINT} --out {installed})",
                file=str(path)))
        elif digest != entry.audio_sha256:
            findings.append(problem(
                "prompts.files", f"prompt {entry.language}/{entry.name}{by}: {path} differs from "
                f"the manifest (sha256 {digest[:12]}…, manifest {entry.audio_sha256[:12]}…): "
                f"callers would hear unproven words; reinstall the build ({BUILD_HINT} --out "
                f"{installed})", file=str(path), sha256=digest, expected=entry.audio_sha256))
    if not findings:
        findings.append(ok("prompts.files", f"{len(entries)} installed prompt files in "
                           f"{installed} match the manifest", folder=str(installed)))
    return findings


# -- checks --------------------------------------------------------------------------------

def _read_manifest(build_dir: Path) -> Manifest:
    path = build_dir / MANIFEST_NAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptCatalogueError(f"{path} not found: prompts were never built; run "
                                   f"{BUILD_HINT}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptCatalogueError(f"{path}: cannot read the manifest ({exc})") from exc
    return Manifest.from_json(raw, str(path))


async def load_manifest(prompts: PromptSettings) -> tuple[list[Finding], Manifest | None]:
    try:
        manifest = await asyncio.to_thread(_read_manifest, prompts.build_dir)
    except PromptCatalogueError as exc:
        return [problem("prompts.manifest", str(exc))], None
    absent = await asyncio.to_thread(_absent_in_build, prompts.build_dir, manifest)
    if absent:
        # The service reads its prompts from the build folder and refuses to start so.
        return [problem("prompts.manifest", f"{prompts.build_dir}: the manifest lists audio "
                        f"that is not there ({', '.join(absent)}); run {BUILD_HINT}",
                        absent=absent)], manifest
    missing = missing_from_manifest(manifest)
    if missing:
        return [problem("prompts.manifest", f"prompts not built in {prompts.build_dir}: "
                        f"{', '.join(missing)}; add their texts and run {BUILD_HINT}",
                        missing=missing)], manifest
    return [ok("prompts.manifest", f"{len(manifest.prompts)} prompts built in "
               f"{prompts.build_dir} ({', '.join(LANGUAGES)})")], manifest


def _absent_in_build(build_dir: Path, manifest: Manifest) -> list[str]:
    return sorted(e.file for e in manifest.prompts.values() if not (build_dir / e.file).is_file())


def _in_use(manifest: Manifest, offered: Offered) -> list[ManifestEntry]:
    """The built prompts of the languages a caller may hear (the build may hold more)."""
    languages = {*LANGUAGES, *offered}
    return [manifest.prompts[k] for k in sorted(manifest.prompts)
            if manifest.prompts[k].language in languages]


def _digests(installed: Path, entries: Sequence[ManifestEntry]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for entry in entries:
        try:
            out[entry.file] = digest_file(installed / entry.file).sha256
        except OSError:
            out[entry.file] = None
    return out


async def check_files(
    manifest: Manifest, prompts: PromptSettings, check: CheckSettings, offered: Offered
) -> list[Finding]:
    installed = check.asterisk_sounds_dir / prompts.sound_prefix.strip("/")
    if not await asyncio.to_thread(installed.is_dir):
        return [warning("prompts.files", f"installed prompts not compared with the manifest: "
                        f"{installed} is not readable from here ([check] "
                        "asterisk_sounds_dir)", folder=str(installed))]
    entries = _in_use(manifest, offered)
    digests = await asyncio.to_thread(_digests, installed, entries)
    return hash_findings(installed, entries, digests, offered)


async def _sound(ari: AriClient, sound_id: str) -> Sound | None:
    try:
        return await ari.get_sound(sound_id)
    except AriNotFound:
        return None


async def check_visible(
    ari: AriClient, manifest: Manifest, prompts: PromptSettings, offered: Offered
) -> list[Finding]:
    entries = _in_use(manifest, offered)
    lookups = [sound_lookup(prompts.sound_prefix, e.language, e.name) for e in entries]
    try:
        sounds = await asyncio.gather(*(_sound(ari, sound_id) for sound_id, _ in lookups))
    except AriError as exc:
        return [problem("prompts.asterisk", f"cannot ask Asterisk for its sounds: {exc}")]
    prefix = prompts.sound_prefix.strip("/")
    findings = [
        problem("prompts.asterisk", f"Asterisk cannot find prompt {e.language}/{e.name}"
                f"{_offered_by(e.language, offered)} "
                f"(sound:{prefix}/{e.language}/{e.name}): install the build as "
                f"{{Asterisk sounds}}/{prefix} ({BUILD_HINT} --out ...)",
                prompt=f"{e.language}/{e.name}")
        for e, sound, (_, index_language) in zip(entries, sounds, lookups, strict=True)
        if not visible(sound, index_language)
    ]
    return findings or [ok("prompts.asterisk", f"Asterisk finds all {len(entries)} prompts "
                           f"under sound:{prefix}/")]
