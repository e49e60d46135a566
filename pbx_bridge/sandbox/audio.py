"""Test tones: make them, encode them as G.711 µ-law, and find them in recordings.

The end-to-end tests give the caller and the agent different tones (440 Hz and
1000 Hz), so a recording proves whose audio it holds by its spectrum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

SAMPLE_RATE = 8000
CALLER_TONE_HZ = 440.0
AGENT_TONE_HZ = 1000.0

_MULAW_BIAS = 0x84
_MULAW_CLIP = 32635


def tone(freq_hz: float, seconds: float, amplitude: float = 0.3) -> npt.NDArray[np.int16]:
    """A sine tone as 16-bit samples at 8 kHz."""
    count = round(seconds * SAMPLE_RATE)
    t = np.arange(count, dtype=np.float64) / SAMPLE_RATE
    return np.round(np.sin(2 * np.pi * freq_hz * t) * amplitude * 32767).astype(np.int16)


def write_tone_wav(path: Path, freq_hz: float, seconds: float, amplitude: float = 0.3) -> Path:
    """An 8 kHz mono 16-bit WAV (the format Asterisk plays without transcoding)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), tone(freq_hz, seconds, amplitude), SAMPLE_RATE, subtype="PCM_16")
    return path


def mulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """G.711 µ-law, as ITU-T G.711 defines it (the payload of RTP type 0)."""
    pcm = samples.astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), _MULAW_CLIP) + _MULAW_BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(encoded.astype(np.uint8).tobytes())


def mulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    codes = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def read_mono(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """Samples in [-1, 1] (first channel when there are several) and the rate."""
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    return np.asarray(data[:, 0], dtype=np.float64), int(rate)


def tone_power(wav_path: Path, freq_hz: float, bandwidth_hz: float = 20.0) -> float:
    """Share of the recording's energy within ``bandwidth_hz`` of ``freq_hz`` (0..1).

    A relative measure, so it does not depend on levels: a clean tone gives
    close to 1, a recording of two equal tones about 0.5 each, silence 0.
    """
    samples, rate = read_mono(wav_path)
    spectrum = _power_spectrum(samples)
    if spectrum.size == 0:
        return 0.0
    freqs = np.fft.rfftfreq(samples.size, d=1.0 / rate)
    total = float(spectrum.sum())
    if total <= 0.0:
        return 0.0
    band = np.abs(freqs - freq_hz) <= bandwidth_hz
    return float(spectrum[band].sum()) / total


def dominant_frequencies(wav_path: Path, count: int = 3, min_gap_hz: float = 50.0) -> list[float]:
    """The ``count`` strongest frequencies, at least ``min_gap_hz`` apart, strongest first."""
    samples, rate = read_mono(wav_path)
    spectrum = _power_spectrum(samples)
    freqs = np.fft.rfftfreq(samples.size, d=1.0 / rate)
    found: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        if spectrum[index] <= 0:
            break
        freq = float(freqs[index])
        if freq < 20.0 or any(abs(freq - other) < min_gap_hz for other in found):
            continue
        found.append(freq)
        if len(found) == count:
            break
    return found


def _power_spectrum(samples: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if samples.size == 0:
        return np.zeros(0)
    windowed = (samples - samples.mean()) * np.hanning(samples.size)
    return np.asarray(np.abs(np.fft.rfft(windowed)) ** 2, dtype=np.float64)
