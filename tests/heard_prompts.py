"""What the end-to-end tests check a consent row's proof against: the segments the route's
composition says the caller hears, each with the version and sha256 the build gave it,
and the composed prompt's own version (sha256 over the segments', as the catalogue
computes it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def assert_heard(
    consent: dict[str, Any], built_prompts: Path, parts: list[tuple[str, str]]
) -> None:
    """``consent`` (``calls list --json``) heard exactly ``parts`` ((language, name) each)."""
    manifest = json.loads((built_prompts / "manifest.json").read_text())["prompts"]
    entries = [manifest[f"{language}/{name}"] for language, name in parts]
    assert [s["name"] for s in consent["prompt_segments"]] == [name for _, name in parts]
    assert [(s["version"], s["audio_sha256"], s["text_sha256"])
            for s in consent["prompt_segments"]] == [
        (e["version"], e["audio_sha256"], e["text_sha256"]) for e in entries
    ]
    versions = "\n".join(e["version"] for e in entries)
    assert consent["prompt_version"] == hashlib.sha256(versions.encode()).hexdigest()[:12]
    audio = "\n".join(e["audio_sha256"] for e in entries)
    assert consent["prompt_sha256"] == hashlib.sha256(audio.encode()).hexdigest()


def in_language(language: str, names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(language, name) for name in names]
