"""Streamed AES-GCM file encryption: round trips, and every way of tampering is refused."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from storage.crypto import (
    DEFAULT_CHUNK_SIZE,
    HEADER_BYTES,
    MAGIC,
    TAG_BYTES,
    decrypt_file,
    encrypt_file,
    encrypted_size,
    is_encrypted,
    new_data_key,
)
from storage.errors import DecryptionFailed, EncryptionError

CONTEXT = "6f1c2a3e-1111-4222-8333-944455556666"
SMALL = 1024  # chunk size for the tampering tests: many chunks from little data


def _plaintext(size: int) -> bytes:
    # Structured, like audio with silence: long runs a weak cipher would leak.
    pattern = b"RIFF....WAVEfmt " + bytes(48) + b"caller-says-hello-"
    return (pattern * (size // len(pattern) + 1))[:size]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.fixture
def key() -> bytes:
    return new_data_key()


@pytest.mark.parametrize(
    "size",
    [0, 1, DEFAULT_CHUNK_SIZE - 1, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1, 3 * 1024 * 1024 + 7],
    ids=["empty", "one-byte", "chunk-minus-1", "one-chunk", "chunk-plus-1", "3MiB"],
)
def test_round_trip(tmp_path: Path, key: bytes, size: int) -> None:
    plain = _plaintext(size)
    (tmp_path / "in.wav").write_bytes(plain)
    encrypt_file(tmp_path / "in.wav", tmp_path / "rec.enc", key, CONTEXT)
    sealed = (tmp_path / "rec.enc").read_bytes()

    assert len(sealed) == encrypted_size(size)
    assert sealed.startswith(MAGIC)
    assert is_encrypted(tmp_path / "rec.enc")
    assert not is_encrypted(tmp_path / "in.wav")
    if size >= 64:
        assert plain not in sealed
        # No 16-byte run of the plaintext survives anywhere in the ciphertext.
        for start in range(0, min(size, 4096) - 16, 7):
            assert plain[start : start + 16] not in sealed
        assert bytes(32) not in sealed

    decrypt_file(tmp_path / "rec.enc", tmp_path / "out.wav", key, CONTEXT)
    assert (tmp_path / "out.wav").read_bytes() == plain
    assert _leftovers(tmp_path) == []


def test_same_file_twice_gives_different_ciphertext(tmp_path: Path, key: bytes) -> None:
    (tmp_path / "in").write_bytes(_plaintext(5000))
    encrypt_file(tmp_path / "in", tmp_path / "a", key, CONTEXT)
    encrypt_file(tmp_path / "in", tmp_path / "b", key, CONTEXT)
    a, b = (tmp_path / "a").read_bytes(), (tmp_path / "b").read_bytes()
    assert a[HEADER_BYTES:] != b[HEADER_BYTES:]


def test_streams_instead_of_holding_the_file(tmp_path: Path, key: bytes) -> None:
    size = 8 * 1024 * 1024
    with (tmp_path / "big").open("wb") as fh:
        for _ in range(size // (1024 * 1024)):
            fh.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        encrypt_file(tmp_path / "big", tmp_path / "big.enc", key, CONTEXT)
        decrypt_file(tmp_path / "big.enc", tmp_path / "big.out", key, CONTEXT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"peak {peak} bytes for an {size}-byte file"
    assert (tmp_path / "big.out").stat().st_size == size


# --- refusals -------------------------------------------------------------------------------


def _sealed(tmp_path: Path, key: bytes, size: int = 5 * SMALL + 100, context: str = CONTEXT,
            name: str = "rec.enc") -> tuple[bytes, bytes]:
    plain = _plaintext(size)
    (tmp_path / "plain").write_bytes(plain)
    encrypt_file(tmp_path / "plain", tmp_path / name, key, context, chunk_size=SMALL)
    return plain, (tmp_path / name).read_bytes()


def _chunks(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER_BYTES:]
    step = SMALL + TAG_BYTES
    return sealed[:HEADER_BYTES], [body[i : i + step] for i in range(0, len(body), step)]


def _assert_refused(tmp_path: Path, data: bytes, key: bytes, context: str = CONTEXT) -> None:
    (tmp_path / "bad.enc").write_bytes(data)
    out = tmp_path / "out" / "plain.wav"
    out.parent.mkdir(exist_ok=True)
    with pytest.raises(DecryptionFailed):
        decrypt_file(tmp_path / "bad.enc", out, key, context)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    "where",
    ["magic", "version", "chunk-size", "nonce-prefix", "first-chunk", "middle-chunk", "last-tag"],
)
def test_any_flipped_bit_is_refused(tmp_path: Path, key: bytes, where: str) -> None:
    _, sealed = _sealed(tmp_path, key)
    at = {
        "magic": 0,
        "version": 8,
        "chunk-size": 12,
        "nonce-prefix": 15,
        "first-chunk": HEADER_BYTES + 3,
        "middle-chunk": HEADER_BYTES + 2 * (SMALL + TAG_BYTES) + 500,
        "last-tag": len(sealed) - 1,
    }[where]
    _assert_refused(tmp_path, _flip(sealed, at), key)


def test_truncated_last_chunk_is_refused(tmp_path: Path, key: bytes) -> None:
    _, sealed = _sealed(tmp_path, key)
    _assert_refused(tmp_path, sealed[:-1], key)
    _assert_refused(tmp_path, sealed[:-TAG_BYTES], key)


def test_dropped_last_chunk_is_refused(tmp_path: Path, key: bytes) -> None:
    # Cutting exactly at a chunk boundary leaves only chunks that authenticate on their
    # own: the "last" flag is what tells the file was longer.
    header, chunks = _sealed_chunks(tmp_path, key)
    _assert_refused(tmp_path, header + b"".join(chunks[:-1]), key)
    _assert_refused(tmp_path, header, key)


def test_dropped_middle_chunk_is_refused(tmp_path: Path, key: bytes) -> None:
    header, chunks = _sealed_chunks(tmp_path, key)
    _assert_refused(tmp_path, header + b"".join(chunks[:2] + chunks[3:]), key)


def test_swapped_chunks_are_refused(tmp_path: Path, key: bytes) -> None:
    header, chunks = _sealed_chunks(tmp_path, key)
    chunks[1], chunks[2] = chunks[2], chunks[1]
    _assert_refused(tmp_path, header + b"".join(chunks), key)


def test_appended_data_is_refused(tmp_path: Path, key: bytes) -> None:
    header, chunks = _sealed_chunks(tmp_path, key)
    _assert_refused(tmp_path, header + b"".join(chunks) + chunks[1], key)


def test_chunk_moved_from_another_file_is_refused(tmp_path: Path, key: bytes) -> None:
    # Same key, same context (the same recording encrypted for two backends).
    header, chunks = _sealed_chunks(tmp_path, key)
    _, other = _sealed(tmp_path, key, name="other.enc")
    _, other_chunks = _chunks(other)
    chunks[1] = other_chunks[1]
    _assert_refused(tmp_path, header + b"".join(chunks), key)
    # Nor does another file's body open under this file's header.
    _assert_refused(tmp_path, header + other[HEADER_BYTES:], key)


def test_wrong_context_is_refused(tmp_path: Path, key: bytes) -> None:
    _, sealed = _sealed(tmp_path, key)
    _assert_refused(tmp_path, sealed, key, context="another-recording")


def test_wrong_key_is_refused(tmp_path: Path, key: bytes) -> None:
    _, sealed = _sealed(tmp_path, key)
    _assert_refused(tmp_path, sealed, new_data_key())


def test_plain_file_is_refused(tmp_path: Path, key: bytes) -> None:
    _assert_refused(tmp_path, _plaintext(3000), key)
    _assert_refused(tmp_path, b"", key)


def test_failed_decryption_keeps_an_existing_destination(tmp_path: Path, key: bytes) -> None:
    _, sealed = _sealed(tmp_path, key)
    (tmp_path / "bad.enc").write_bytes(_flip(sealed, len(sealed) - 1))
    (tmp_path / "out.wav").write_bytes(b"previous")
    with pytest.raises(DecryptionFailed):
        decrypt_file(tmp_path / "bad.enc", tmp_path / "out.wav", key, CONTEXT)
    assert (tmp_path / "out.wav").read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []


def test_data_key_must_be_256_bits(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"x")
    with pytest.raises(EncryptionError):
        encrypt_file(tmp_path / "in", tmp_path / "out", os.urandom(16), CONTEXT)
    assert not (tmp_path / "out").exists()


def _sealed_chunks(tmp_path: Path, key: bytes) -> tuple[bytes, list[bytes]]:
    _, sealed = _sealed(tmp_path, key)
    header, chunks = _chunks(sealed)
    assert len(chunks) == 6 and len(chunks[-1]) == 100 + TAG_BYTES
    return header, chunks
