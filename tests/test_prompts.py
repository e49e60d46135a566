"""Prompt texts, the builder (real espeak-ng and sox) and the catalogue the flow reads."""

# Turkish words legitimately contain the dotless i (U+0131).
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pbx_bridge.config import LegalBasis, PromptSettings
from pbx_bridge.disclosure import DisclosureFacts, disclosure
from pbx_bridge.flow.prompts import (
    MANIFEST_NAME,
    REQUIRED_PROMPTS,
    Manifest,
    PromptCatalogue,
    PromptMissing,
    PromptsNotBuilt,
)
from pbx_bridge.prompt_builder import (
    PromptAmbiguous,
    PromptBuildError,
    PromptConversionFailed,
    PromptTextInvalid,
    PromptTextMissing,
    build_prompts,
)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
LANGUAGES = ("tr", "en")
CONTROLLER = "Deneme Çağrı Hizmetleri A.Ş."


def _wav(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / 8000


def _minimal_prompts(root: Path, languages: tuple[str, ...] = ("en",)) -> Path:
    """A complete but short set of texts, so builds in tests that change them stay quick."""
    for lang in languages:
        (root / lang).mkdir(parents=True)
        for name in REQUIRED_PROMPTS:
            (root / lang / f"{name}.txt").write_text(f"{name.replace('-', ' ')}.\n")
    return root


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def real_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("real") / "built"
    settings = PromptSettings(dir=PROMPTS_DIR, controller=CONTROLLER)
    manifest = asyncio.run(build_prompts(settings, out))
    return out, manifest


def test_every_required_prompt_is_telephone_audio(real_build: tuple[Path, Manifest]) -> None:
    out, manifest = real_build
    for lang in LANGUAGES:
        for name in REQUIRED_PROMPTS:
            entry = manifest.prompts[f"{lang}/{name}"]
            path = out / entry.file
            assert entry.file == f"{lang}/{name}.wav"
            rate, channels, width, duration = _wav(path)
            assert (rate, channels, width) == (8000, 1, 2)
            # A number ("5") is one short word; everything else is at least a phrase.
            assert duration > (0.25 if name.startswith("number-") else 0.8), (lang, name)
            assert entry.duration_s == pytest.approx(duration, abs=0.01)
            assert entry.source == "espeak-ng"
            # Not silence: speech has real energy.
            samples, _ = sf.read(path, dtype="int16")
            assert np.abs(samples).max() > 5000
    # The full notice is spoken in a reasonable time, the short ones are short.
    for lang in LANGUAGES:
        for basis in LegalBasis:
            spoken = disclosure(DisclosureFacts(basis, 365, "123456789"))
            total = sum(manifest.prompts[f"{lang}/{name}"].duration_s for name in spoken)
            assert 40 < total < 85, (lang, basis, total)
        assert manifest.prompts[f"{lang}/confirm-granted"].duration_s < 8


def test_manifest_hashes_match_the_files(real_build: tuple[Path, Manifest]) -> None:
    out, _ = real_build
    on_disk = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert on_disk["format"] == 1
    assert on_disk["controller"] == CONTROLLER
    expected_keys = {f"{lang}/{n}" for lang in LANGUAGES for n in REQUIRED_PROMPTS}
    assert set(on_disk["prompts"]) == expected_keys
    for key, entry in on_disk["prompts"].items():
        data = (out / entry["file"]).read_bytes()
        assert entry["audio_sha256"] == hashlib.sha256(data).hexdigest(), key
        assert entry["text_sha256"] == hashlib.sha256(entry["text"].encode()).hexdigest()
        expected = hashlib.sha256(
            (entry["text_sha256"] + entry["audio_sha256"] + entry["source"]).encode()
        ).hexdigest()[:12]
        assert entry["version"] == expected
    assert not list(out.parent.glob(".built.*")), "staging or old folders left behind"


def test_controller_is_substituted(real_build: tuple[Path, Manifest]) -> None:
    _, manifest = real_build
    for lang in LANGUAGES:
        text = manifest.prompts[f"{lang}/disclosure-intro"].text
        assert CONTROLLER in text
        assert "{" not in text and "}" not in text


def test_disclosure_texts_carry_the_required_elements() -> None:
    """The consent route's disclosure, as composed (pbx_bridge/disclosure.py)."""
    spoken = disclosure(DisclosureFacts(LegalBasis.CONSENT, 60, None))

    def composed(lang: str) -> str:
        return " ".join((PROMPTS_DIR / lang / f"{name}.txt").read_text(encoding="utf-8")
                        for name in spoken)

    tr, en = composed("tr"), composed("en")
    for text in (tr, en):
        assert "{controller}" in text
        for word in (
            "KVKK",
            "GDPR",
            "madde 5" if text is tr else "article 5",
            "11",
            "15",
            "22",
            "30",
            "KEP",
        ):
            assert word in text, word
        assert not re.search(r"\b0\b", text), "key 0 is offered by the short notice only"
    for word in (
        "ses kaydı",
        "telefon numaranızı",
        "arama zamanlarınızı",
        "açık rıza",
        "ispat",
        "şikâyet",
        "yetkili çalışan",
        "hizmet sağlayıcı",
        "yetkili kurum",
        "gün saklar",
        "sileriz",
        "işlenip işlenmediğini",
        "itiraz",
        "rızanızı geri alma",
        "Kişisel Verileri Koruma Kurulu",
        "yazılı",
        "onaylıyorsanız 1",
        "2 tuşuna",
        "9 tuşuna",
        "bağlanacaksınız",
    ):
        assert word.lower() in tr.lower(), word
    for word in (
        "voice recording",
        "phone number",
        "call times",
        "explicit consent",
        "proof of transactions",
        "complaints",
        "authorised staff",
        "service providers",
        "authorities",
        "keep the recording for",
        "delete",
        "whether your data is processed",
        "object",
        "withdraw consent",
        "KVKK Board",
        "supervisory authority",
        "in writing",
        "Press 1",
        "Press 2",
        "Press 9",
        "connected either way",
    ):
        assert word.lower() in en.lower(), word


def test_every_language_has_exactly_the_required_texts() -> None:
    for lang in LANGUAGES:
        names = {p.stem for p in (PROMPTS_DIR / lang).glob("*.txt")}
        assert names == set(REQUIRED_PROMPTS)
    tr_all = " ".join(p.read_text(encoding="utf-8") for p in (PROMPTS_DIR / "tr").glob("*.txt"))
    assert set("çğıİöşü") <= set(tr_all), "Turkish texts must use Turkish letters"


async def test_building_twice_gives_the_same_audio(tmp_path: Path) -> None:
    settings = PromptSettings(dir=_minimal_prompts(tmp_path / "texts"), controller="X")
    first = await build_prompts(settings, tmp_path / "a")
    second = await build_prompts(settings, tmp_path / "b")
    for key, entry in first.prompts.items():
        assert second.prompts[key].audio_sha256 == entry.audio_sha256
        assert second.prompts[key].version == entry.version


async def test_studio_recording_replaces_synthesis(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts", ("tr",))
    rate = 44100
    t = np.arange(int(rate * 2.5)) / rate
    stereo = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)], 1)
    sf.write(texts / "tr" / "disclosure-intro.wav", stereo, rate, subtype="PCM_16")
    sf.write(texts / "tr" / "busy.flac", stereo[:, 0], 48000)
    settings = PromptSettings(dir=texts, build_dir=tmp_path / "out")
    manifest = await build_prompts(settings)
    entry = manifest.prompts["tr/disclosure-intro"]
    assert entry.source == "studio"
    assert manifest.prompts["tr/busy"].source == "studio"
    assert manifest.prompts["tr/notice-full-offer"].source == "espeak-ng"
    rate_out, channels, width, duration = _wav(tmp_path / "out" / "tr" / "disclosure-intro.wav")
    assert (rate_out, channels, width) == (8000, 1, 2)
    assert duration == pytest.approx(2.5, abs=0.01)
    assert (
        entry.audio_sha256
        == hashlib.sha256(
            (tmp_path / "out" / "tr" / "disclosure-intro.wav").read_bytes()).hexdigest()
    )
    # The tone survived the conversion: the 440 Hz peak dominates the spectrum.
    samples, _ = sf.read(tmp_path / "out" / "tr" / "disclosure-intro.wav", dtype="float64")
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    assert abs(freqs[spectrum.argmax()] - 440) < 5 or abs(freqs[spectrum.argmax()] - 660) < 5


async def test_two_studio_recordings_for_one_prompt_are_refused(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts")
    tone = np.zeros(8000)
    sf.write(texts / "en" / "busy.wav", tone, 8000)
    sf.write(texts / "en" / "busy.flac", tone, 8000)
    with pytest.raises(PromptAmbiguous, match="busy"):
        await build_prompts(PromptSettings(dir=texts), tmp_path / "out")


async def test_missing_text_fails_and_keeps_the_previous_build(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts", ("tr", "en"))
    out = tmp_path / "out"
    settings = PromptSettings(dir=texts)
    await build_prompts(settings, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    missing = texts / "en" / "no-answer.txt"
    missing.unlink()
    with pytest.raises(PromptTextMissing) as info:
        await build_prompts(settings, out)
    assert str(missing) in str(info.value)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert _entries(tmp_path) == ["out", "texts"], "staging or old folders left behind"


async def test_failing_conversion_keeps_the_previous_build(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts")
    out = tmp_path / "out"
    await build_prompts(PromptSettings(dir=texts), out)
    manifest_before = (out / MANIFEST_NAME).read_bytes()
    (texts / "en" / "busy.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(PromptConversionFailed, match=r"busy\.wav"):
        await build_prompts(PromptSettings(dir=texts), out)
    assert (out / MANIFEST_NAME).read_bytes() == manifest_before
    assert _entries(tmp_path) == ["out", "texts"], "staging or old folders left behind"


async def test_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts")
    path = texts / "en" / "notice-full-offer.txt"
    path.write_text("Call {company} on {controller}.")
    with pytest.raises(PromptTextInvalid, match=r"notice-full-offer\.txt.*\{company\}"):
        await build_prompts(PromptSettings(dir=texts), tmp_path / "out")
    path.write_text("An unbalanced { brace.")
    with pytest.raises(PromptTextInvalid, match="brace"):
        await build_prompts(PromptSettings(dir=texts), tmp_path / "out")


async def test_a_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts")
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    (sounds / "hello-world.wav").write_bytes(b"not ours")
    with pytest.raises(PromptBuildError, match=r"no manifest\.json"):
        await build_prompts(PromptSettings(dir=texts), sounds)
    assert (sounds / "hello-world.wav").read_bytes() == b"not ours"


async def test_text_change_changes_version(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts")
    settings = PromptSettings(dir=texts)
    first = await build_prompts(settings, tmp_path / "out")
    (texts / "en" / "busy.txt").write_text("Everyone is busy. Goodbye.\n")
    second = await build_prompts(settings, tmp_path / "out")
    old, new = first.prompts["en/busy"], second.prompts["en/busy"]
    assert new.text == "Everyone is busy. Goodbye."
    assert new.text_sha256 != old.text_sha256
    assert new.version != old.version
    assert new.audio_sha256 != old.audio_sha256
    rights = "en/disclosure-rights"
    assert second.prompts[rights].version == first.prompts[rights].version
    # Only the controller changing still changes what was heard, hence the version.
    third = await build_prompts(PromptSettings(dir=texts, controller="Other Ltd"), tmp_path / "o")
    assert third.prompts[rights].version == first.prompts[rights].version
    (texts / "en" / "disclosure-rights.txt").write_text("Controller: {controller}.")
    a = await build_prompts(PromptSettings(dir=texts, controller="A Ltd"), tmp_path / "o")
    b = await build_prompts(PromptSettings(dir=texts, controller="B Ltd"), tmp_path / "o")
    assert a.prompts[rights].version != b.prompts[rights].version


async def test_catalogue_load_get_and_missing(real_build: tuple[Path, Manifest]) -> None:
    out, manifest = real_build
    catalogue = await PromptCatalogue.load(out, "pbx-bridge")
    assert catalogue.languages == frozenset(LANGUAGES)
    prompt = catalogue.get("tr", "disclosure-intro")
    entry = manifest.prompts["tr/disclosure-intro"]
    assert prompt.media == "sound:pbx-bridge/tr/disclosure-intro"
    assert (prompt.version, prompt.audio_sha256, prompt.text_sha256) == (
        entry.version,
        entry.audio_sha256,
        entry.text_sha256,
    )
    assert prompt.duration_s == entry.duration_s
    catalogue.check_complete(["tr", "en"])
    with pytest.raises(PromptMissing, match="de/disclosure-intro"):
        catalogue.get("de", "disclosure-intro")
    with pytest.raises(PromptMissing, match="pbx-bridge prompts build"):
        catalogue.check_complete(["tr", "de"])


async def test_catalogue_refuses_an_unbuilt_or_broken_folder(tmp_path: Path) -> None:
    with pytest.raises(PromptsNotBuilt, match="pbx-bridge prompts build"):
        await PromptCatalogue.load(tmp_path, "pbx-bridge")
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(PromptsNotBuilt, match="not a valid prompt manifest"):
        await PromptCatalogue.load(tmp_path, "pbx-bridge")
    texts = _minimal_prompts(tmp_path / "texts")
    out = tmp_path / "out"
    await build_prompts(PromptSettings(dir=texts), out)
    (out / "en" / "busy.wav").unlink()
    with pytest.raises(PromptsNotBuilt, match=r"en/busy\.wav"):
        await PromptCatalogue.load(out, "pbx-bridge")
    with pytest.raises(PromptsNotBuilt, match="pbx-bridge prompts build"):
        PromptCatalogue([]).check_complete(["en"])


async def test_incomplete_language_catalogue(tmp_path: Path) -> None:
    texts = _minimal_prompts(tmp_path / "texts")
    out = tmp_path / "out"
    await build_prompts(PromptSettings(dir=texts), out)
    data = json.loads((out / MANIFEST_NAME).read_text())
    del data["prompts"]["en/agent-connecting"]
    (out / MANIFEST_NAME).write_text(json.dumps(data))
    catalogue = await PromptCatalogue.load(out, "sounds/custom")
    assert catalogue.get("en", "busy").media == "sound:sounds/custom/en/busy"
    with pytest.raises(PromptMissing, match="en/agent-connecting"):
        catalogue.check_complete(["en"])
    shutil.rmtree(out)
