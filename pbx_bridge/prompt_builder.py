"""Turn the prompt texts (or studio recordings) into audio Asterisk plays, plus a manifest.

Asterisk plays ``.wav`` as 8 kHz mono 16-bit PCM, so every prompt is converted to exactly
that. The manifest pins each prompt's text and audio by sha256: a consent is only provable
if we can say which words the caller heard. The build goes to a staging folder that
replaces the old one only when everything succeeded, so a broken text never leaves the
service with half a set of prompts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
import tempfile
import wave
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pbx_bridge.config import PromptSettings
from pbx_bridge.flow.prompts import (
    MANIFEST_NAME,
    REQUIRED_PROMPTS,
    Manifest,
    ManifestEntry,
)
from storage.progress import SILENT, Progress

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
STUDIO_SUFFIXES = (".wav", ".flac")
SOURCE_ESPEAK = "espeak-ng"
SOURCE_STUDIO = "studio"

# espeak-ng's Turkish voice speaks far fewer words a minute than its English one at the
# same setting; a slightly higher rate keeps the disclosure near a minute and still clear.
_ESPEAK_VOICES = {"tr": ("tr", 180), "en": ("en", 165)}
_DEFAULT_ESPEAK_SPEED = 165
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LANGUAGE_DIR = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")
_PARALLEL = 2  # conversions are CPU-bound; the target hosts are small


class PromptBuildError(Exception):
    """The prompts could not be built; the previous build (if any) is left in place."""


class PromptTextMissing(PromptBuildError):
    """A required prompt has no text in one language."""


class PromptTextInvalid(PromptBuildError):
    """A text cannot be used as it is (encoding, emptiness, unknown placeholder)."""


class PromptAmbiguous(PromptBuildError):
    """Two studio recordings compete for one prompt."""


class PromptSynthesisFailed(PromptBuildError):
    """espeak-ng failed (or is not installed)."""


class PromptConversionFailed(PromptBuildError):
    """sox could not turn a recording into 8 kHz mono 16-bit WAV."""


@dataclass(frozen=True)
class _Source:
    language: str
    name: str
    text_path: Path
    studio_path: Path | None


async def build_prompts(
    settings: PromptSettings, out_dir: Path | None = None, progress: Progress = SILENT
) -> Manifest:
    """Build every prompt of every language folder under ``settings.dir`` into ``out_dir``.

    Writes ``{out_dir}/{language}/{name}.wav`` and ``{out_dir}/manifest.json``; the
    default ``out_dir`` is ``settings.build_dir``.
    """
    target = (out_dir if out_dir is not None else settings.build_dir).absolute()
    await asyncio.to_thread(_check_replaceable, target)
    sources = await asyncio.to_thread(_collect_sources, settings.dir)
    progress.start(len(sources))
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    staging = Path(
        await asyncio.to_thread(
            tempfile.mkdtemp, prefix=f".{target.name}.building-", dir=target.parent
        )
    )
    try:
        limit = asyncio.Semaphore(_PARALLEL)

        async def one(source: _Source) -> ManifestEntry:
            async with limit:
                entry = await _build_one(source, settings.controller, staging)
            progress.advance()
            return entry

        entries = await _all_or_nothing([one(s) for s in sources])
        manifest = Manifest(
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            controller=settings.controller,
            prompts={f"{e.language}/{e.name}": e for e in entries},
        )
        await asyncio.to_thread(_write_text, staging / MANIFEST_NAME, manifest.to_json())
        await asyncio.to_thread(_swap_in, staging, target)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staging, True)
        raise
    log.info("built %d prompts in %s", len(entries), target)
    return manifest


async def _all_or_nothing(jobs: list[Coroutine[Any, Any, ManifestEntry]]) -> list[ManifestEntry]:
    """Run the jobs; on the first failure stop the rest before the staging folder goes."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [task.result() for task in tasks]


def _check_replaceable(target: Path) -> None:
    """The build replaces the whole folder: never swap away one we did not build."""
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
        raise PromptBuildError(
            f"{target}: exists, is not empty and has no {MANIFEST_NAME}; the build replaces "
            "the whole folder, so point prompts.build_dir at a folder of its own"
        )
    if target.exists() and not target.is_dir():
        raise PromptBuildError(f"{target}: exists and is not a folder")


def _collect_sources(prompts_dir: Path) -> list[_Source]:
    if not prompts_dir.is_dir():
        raise PromptTextMissing(f"{prompts_dir}: prompt texts folder not found")
    languages = sorted(
        p for p in prompts_dir.iterdir() if p.is_dir() and _LANGUAGE_DIR.match(p.name)
    )
    if not languages:
        raise PromptTextMissing(
            f"{prompts_dir}: no language folders (expected e.g. {prompts_dir}/tr/disclosure.txt)"
        )
    sources: list[_Source] = []
    for lang_dir in languages:
        names = {p.stem for p in lang_dir.glob("*.txt") if p.is_file()}
        missing = [n for n in REQUIRED_PROMPTS if n not in names]
        if missing:
            paths = ", ".join(str(lang_dir / f"{n}.txt") for n in missing)
            raise PromptTextMissing(f"required prompt text missing: {paths}")
        for name in sorted(names):
            studio = [lang_dir / f"{name}{s}" for s in STUDIO_SUFFIXES]
            present = [p for p in studio if p.is_file()]
            if len(present) > 1:
                raise PromptAmbiguous(
                    f"{' and '.join(map(str, present))}: keep one studio recording per prompt"
                )
            sources.append(
                _Source(
                    language=lang_dir.name,
                    name=name,
                    text_path=lang_dir / f"{name}.txt",
                    studio_path=present[0] if present else None,
                )
            )
    return sources


def render_text(raw: str, controller: str, path: Path) -> str:
    """Substitute ``{controller}``; any other brace is a typo that must not be spoken."""
    unknown = sorted({m for m in _PLACEHOLDER.findall(raw) if m != "controller"})
    if unknown:
        names = ", ".join("{" + u + "}" for u in unknown)
        raise PromptTextInvalid(f"{path}: unknown placeholder {names} (only {{controller}})")
    leftover = _PLACEHOLDER.sub("", raw)
    if "{" in leftover or "}" in leftover:
        raise PromptTextInvalid(f"{path}: unbalanced brace; only {{controller}} is substituted")
    text = raw.replace("{controller}", controller).strip()
    if not text:
        raise PromptTextInvalid(f"{path}: text is empty")
    return text


async def _build_one(source: _Source, controller: str, staging: Path) -> ManifestEntry:
    raw = await asyncio.to_thread(_read_text, source.text_path)
    text = render_text(raw, controller, source.text_path)
    out = staging / source.language / f"{source.name}.wav"
    await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
    if source.studio_path is not None:
        await _convert(source.studio_path, out)
        origin = SOURCE_STUDIO
    else:
        work = staging / ".work" / source.language
        await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
        text_file = work / f"{source.name}.txt"
        raw_wav = work / f"{source.name}.espeak.wav"
        await asyncio.to_thread(_write_text, text_file, text)
        await _synthesise(source, text_file, raw_wav)
        await _convert(raw_wav, out)
        origin = SOURCE_ESPEAK
    audio_sha256, duration_s = await asyncio.to_thread(_inspect_wav, out)
    text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    version = hashlib.sha256(f"{text_sha256}{audio_sha256}{origin}".encode()).hexdigest()[:12]
    return ManifestEntry(
        language=source.language,
        name=source.name,
        text=text,
        text_sha256=text_sha256,
        audio_sha256=audio_sha256,
        version=version,
        source=origin,
        duration_s=duration_s,
        file=f"{source.language}/{source.name}.wav",
    )


async def _synthesise(source: _Source, text_file: Path, raw_wav: Path) -> None:
    voice, speed = _ESPEAK_VOICES.get(source.language, (source.language, _DEFAULT_ESPEAK_SPEED))
    # -b 1: the text is UTF-8 (Turkish letters); -f: read a file, so no text reaches argv.
    argv = [
        "espeak-ng",
        "-v",
        voice,
        "-s",
        str(speed),
        "-b",
        "1",
        "-f",
        str(text_file),
        "-w",
        str(raw_wav),
    ]
    await _run(argv, PromptSynthesisFailed, f"{source.text_path}: espeak-ng")


async def _convert(src: Path, dst: Path) -> None:
    # -D: no dither, so the same input always gives the same bytes (and the same sha256).
    # remix -: all channels to one; gain -n -3: a level that neither clips nor whispers.
    argv = [
        "sox",
        "-D",
        str(src),
        "-b",
        "16",
        "-e",
        "signed-integer",
        "-t",
        "wav",
        str(dst),
        "remix",
        "-",
        "rate",
        "-v",
        str(SAMPLE_RATE),
        "gain",
        "-n",
        "-3",
    ]
    await _run(argv, PromptConversionFailed, f"{src}: sox")


async def _run(argv: list[str], error: type[PromptBuildError], what: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise error(f"{what}: {argv[0]} is not installed (apt-get install {argv[0]})") from None
    try:
        _, stderr = await proc.communicate()
    except asyncio.CancelledError:
        # A sibling failed: do not leave a converter running into a folder being removed.
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise error(f"{what} failed: {detail}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PromptTextInvalid(f"{path}: not UTF-8 ({exc.reason})") from exc
    except OSError as exc:
        raise PromptTextMissing(f"{path}: cannot read ({exc.strerror})") from exc


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _inspect_wav(path: Path) -> tuple[str, float]:
    data = path.read_bytes()
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.getnframes()
    except (wave.Error, EOFError) as exc:
        raise PromptConversionFailed(f"{path}: sox wrote an unreadable WAV ({exc})") from exc
    if (rate, channels, width) != (SAMPLE_RATE, 1, 2):
        raise PromptConversionFailed(
            f"{path}: expected 8000 Hz mono 16-bit, got {rate} Hz, {channels} ch, {8 * width}-bit"
        )
    if frames == 0:
        raise PromptConversionFailed(f"{path}: the audio is empty")
    return hashlib.sha256(data).hexdigest(), round(frames / rate, 3)


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` with the finished build; the gap between the renames is tiny."""
    shutil.rmtree(staging / ".work", ignore_errors=True)
    staging.chmod(0o755)  # mkdtemp makes it private; Asterisk must read it
    old: Path | None = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
