"""The prompts the call flow may play, as built by ``pbx-bridge prompts build``.

The manifest is the proof of *which* words a caller heard: a consent row stores the
prompt's version and hashes, so changing a text or recording must never be silent. The
catalogue is read once at start-up and is a plain lookup afterwards, so a call never
touches the disk to find its prompts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pbx_bridge.disclosure import SEGMENT_PROMPTS

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

# Every language must have all of these: the call flow plays them by name.
REQUIRED_PROMPTS: tuple[str, ...] = (
    "confirm-granted",
    "confirm-not-objected",
    "confirm-declined",
    "confirm-timeout",
    "confirm-withdrawn",
    "withdrawal-offer",
    "do-not-record",
    "timeout-hangup",
    "invalid-choice",
    "busy",
    "unreachable",
    "no-answer",
    "agent-connecting",
    "agent-recording-started",
    "agent-recording-stopped",
    "agent-recording-not-allowed",
    # The disclosure composed per route (pbx_bridge/disclosure.py), the re-ask of routes
    # where 2 objects, and the language choice ("For English, press" + a number).
    *SEGMENT_PROMPTS,
    "invalid-choice-objection",
    "language-choice",
    "agent-recording-paused",
    "agent-recording-resumed",
    "agent-pause-auto-resumed",
    "agent-not-recording",
    "agent-retention-set",
    "agent-retention-failed",
    # Transfers (flow/transfer.py): the held caller, the agent back with the caller (and
    # why), the new agent told what became of the recording.
    "transfer-hold",
    "agent-transfer-busy",
    "agent-transfer-no-answer",
    "agent-transfer-failed",
    "agent-transfer-cancelled",
    "agent-transfer-not-recorded",
    "agent-transfer-on-demand",
)

_BUILD_HINT = "run `pbx-bridge prompts build`"


class PromptCatalogueError(Exception):
    """The built prompts cannot be used; the service must not take calls without them."""


class PromptsNotBuilt(PromptCatalogueError):
    """No usable manifest in the build folder (never built, or a broken build)."""


class PromptMissing(PromptCatalogueError, LookupError):
    """The flow asked for a prompt (or language) that the build does not contain."""


@dataclass(frozen=True)
class ManifestEntry:
    """One built prompt as recorded in manifest.json."""

    language: str
    name: str
    text: str
    text_sha256: str
    audio_sha256: str
    version: str
    source: str  # "espeak-ng" or "studio"
    duration_s: float
    file: str  # relative to the build folder, e.g. "tr/disclosure.wav"


@dataclass(frozen=True)
class Manifest:
    """What one build produced; written by the builder, read by the catalogue."""

    built_at: str
    controller: str
    prompts: Mapping[str, ManifestEntry]  # keyed "{language}/{name}"
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        data = {
            "format": self.format,
            "built_at": self.built_at,
            "controller": self.controller,
            "prompts": {key: asdict(self.prompts[key]) for key in sorted(self.prompts)},
        }
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, raw: str, source: str = MANIFEST_NAME) -> Manifest:
        """Parse and check a manifest; anything unexpected is a broken build, not a guess."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unsupported format {data.get('format')!r}")
            prompts_raw: dict[str, Any] = data["prompts"]
            prompts = {key: ManifestEntry(**value) for key, value in prompts_raw.items()}
            return cls(
                built_at=str(data["built_at"]),
                controller=str(data["controller"]),
                prompts=prompts,
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PromptsNotBuilt(
                f"{source}: not a valid prompt manifest ({exc}); {_BUILD_HINT}"
            ) from exc


@dataclass(frozen=True)
class Prompt:
    """A playable prompt and the identity the proof of consent records."""

    name: str
    language: str
    version: str
    audio_sha256: str
    text_sha256: str
    duration_s: float
    media: str  # ARI media URI, e.g. "sound:pbx-bridge/tr/disclosure-intro"
    # A composed prompt (the disclosure of a route): the prompts it plays in order, as one
    # playback (``media`` lists them comma-separated). Empty for a single prompt.
    segments: tuple[Prompt, ...] = ()

    @property
    def heard(self) -> tuple[Prompt, ...]:
        """The single prompts the caller hears, in order (the proof keeps each)."""
        return self.segments or (self,)


class PromptCatalogue:
    """Lookup of built prompts by (language, name)."""

    def __init__(self, prompts: Iterable[Prompt], build_dir: Path | None = None) -> None:
        self._prompts: dict[tuple[str, str], Prompt] = {(p.language, p.name): p for p in prompts}
        self._build_dir = build_dir

    @classmethod
    async def load(cls, build_dir: Path, sound_prefix: str) -> PromptCatalogue:
        """Read the manifest (off the event loop) and check its audio files are present."""
        entries = await asyncio.to_thread(_read_manifest, build_dir)
        prefix = sound_prefix.strip("/")
        prompts = [
            Prompt(
                name=e.name,
                language=e.language,
                version=e.version,
                audio_sha256=e.audio_sha256,
                text_sha256=e.text_sha256,
                duration_s=e.duration_s,
                media=f"sound:{prefix}/{e.language}/{e.name}",
            )
            for e in entries
        ]
        return cls(prompts, build_dir)

    def get(self, language: str, name: str) -> Prompt:
        try:
            return self._prompts[(language, name)]
        except KeyError:
            raise PromptMissing(
                f"prompt {language}/{name} is not built"
                f"{self._where()}; add prompts/{language}/{name}.txt and {_BUILD_HINT}"
            ) from None

    def compose(
        self, name: str, parts: Iterable[tuple[str, str]], language: str
    ) -> Prompt:
        """One prompt playing ``parts`` (``(language, name)`` each) back to back.

        Its version and hashes are those of the sequence (sha256 over the parts', in
        order), so a different composition or a changed segment is a different version;
        ``segments`` keeps each part for the proof.
        """
        segments = tuple(self.get(lang, part) for lang, part in parts)
        if not segments:
            raise PromptMissing(f"prompt {language}/{name}: nothing to compose")

        def digest(values: Iterable[str]) -> str:
            return hashlib.sha256("\n".join(values).encode()).hexdigest()

        return Prompt(
            name=name,
            language=language,
            version=digest(s.version for s in segments)[:12],
            audio_sha256=digest(s.audio_sha256 for s in segments),
            text_sha256=digest(s.text_sha256 for s in segments),
            duration_s=round(sum(s.duration_s for s in segments), 3),
            media=",".join(s.media for s in segments),
            segments=segments,
        )

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(language for language, _ in self._prompts)

    def __len__(self) -> int:
        return len(self._prompts)

    def check_complete(self, languages: Iterable[str]) -> None:
        """Refuse a catalogue the flow could fall through: every required prompt, every language."""
        if not self._prompts:
            raise PromptsNotBuilt(f"no prompts are built{self._where()}; {_BUILD_HINT}")
        missing = [
            f"{language}/{name}"
            for language in sorted(set(languages))
            for name in REQUIRED_PROMPTS
            if (language, name) not in self._prompts
        ]
        if missing:
            raise PromptMissing(
                f"prompts not built{self._where()}: {', '.join(missing)}; add the texts "
                f"under the prompts folder and {_BUILD_HINT}"
            )

    def _where(self) -> str:
        return f" in {self._build_dir}" if self._build_dir is not None else ""


def _read_manifest(build_dir: Path) -> list[ManifestEntry]:
    path = build_dir / MANIFEST_NAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptsNotBuilt(
            f"{path} not found: prompts were never built; {_BUILD_HINT}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptsNotBuilt(f"{path}: cannot read the manifest ({exc}); {_BUILD_HINT}") from exc
    manifest = Manifest.from_json(raw, str(path))
    absent = [e.file for e in manifest.prompts.values() if not (build_dir / e.file).is_file()]
    if absent:
        raise PromptsNotBuilt(
            f"{build_dir}: the manifest lists audio that is not there "
            f"({', '.join(sorted(absent))}); {_BUILD_HINT}"
        )
    return list(manifest.prompts.values())
