"""pcap files of an RTP stream (PCMU tone with RFC 4733 DTMF events) for sipp.

sipp's ``play_pcap_audio`` replays a pcap with its original timing. Writing our
own capture keeps the tone and the DTMF in one stream with one SSRC, sequence
and clock, which is what a real phone sends; two overlapping pcaps would not be.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pbx_bridge.sandbox.audio import SAMPLE_RATE, mulaw_encode, tone

PACKET_MS = 20
SAMPLES_PER_PACKET = SAMPLE_RATE * PACKET_MS // 1000
PCMU = 0
TELEPHONE_EVENT = 101
DTMF_EVENTS = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    **{c: 12 + i for i, c in enumerate("ABCD")},
}
DTMF_DURATION_MS = 200
_END_REPEATS = 3


def validate_digits(dtmf: Sequence[tuple[float, str]]) -> None:
    for offset, digit in dtmf:
        if digit not in DTMF_EVENTS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if offset < 0:
            raise ValueError(f"negative DTMF offset: {offset}")


def write_rtp_pcap(
    path: Path,
    freq_hz: float,
    seconds: float,
    dtmf: Sequence[tuple[float, str]] = (),
    ssrc: int = 0x5EED0001,
    amplitude: float = 0.3,
) -> Path:
    """``seconds`` of a PCMU tone; each (offset_s, digit) replaces the tone by a DTMF event.

    Events follow RFC 4733: one timestamp per event, growing duration, marker on
    the first packet, end bit on the last three.
    """
    validate_digits(dtmf)
    packets_total = round(seconds * 1000 / PACKET_MS)
    payload = mulaw_encode(tone(freq_hz, packets_total * PACKET_MS / 1000, amplitude))
    event_at = {round(offset * 1000 / PACKET_MS): digit for offset, digit in dtmf}
    event_packets = DTMF_DURATION_MS // PACKET_MS

    records: list[tuple[int, bytes]] = []  # (time in µs, RTP packet)
    seq = 1
    index = 0
    while index < packets_total:
        timestamp = index * SAMPLES_PER_PACKET
        digit = event_at.get(index)
        if digit is None:
            chunk = payload[index * SAMPLES_PER_PACKET : (index + 1) * SAMPLES_PER_PACKET]
            records.append(
                (index * PACKET_MS * 1000, _rtp(PCMU, seq, timestamp, ssrc, chunk, False))
            )
            seq += 1
            index += 1
            continue
        for step in range(event_packets):
            duration = (step + 1) * SAMPLES_PER_PACKET
            last = step == event_packets - 1
            repeats = _END_REPEATS if last else 1
            for _ in range(repeats):
                body = struct.pack("!BBH", DTMF_EVENTS[digit], (0x80 if last else 0) | 10, duration)
                when = (index + step) * PACKET_MS * 1000
                records.append((when, _rtp(TELEPHONE_EVENT, seq, timestamp, ssrc, body, step == 0)))
                seq += 1
        index += event_packets
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_pcap(records))
    return path


def _rtp(
    payload_type: int, seq: int, timestamp: int, ssrc: int, body: bytes, marker: bool
) -> bytes:
    second = (0x80 if marker else 0) | payload_type
    header = struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + body


def _pcap(records: list[tuple[int, bytes]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    src_ip, dst_ip = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    for micros, rtp in records:
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip_header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src_ip, dst_ip
        )
        ip_header = ip_header[:10] + struct.pack("!H", _checksum(ip_header)) + ip_header[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip_header + udp
        out.append(
            struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame))
        )
        out.append(frame)
    return b"".join(out)


def _checksum(data: bytes) -> int:
    words = np.frombuffer(data if len(data) % 2 == 0 else data + b"\0", dtype=">u2")
    total = int(words.sum())
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
