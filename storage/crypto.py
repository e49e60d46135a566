"""Encryption at rest for recording files: streamed, chunked AES-256-GCM.

A recording can be an hour of audio, so a file is sealed in chunks rather than as one
AES-GCM message (which would have to sit in memory whole before its tag could be checked).
The layout follows the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015):

    header  = b"PBXB-ENC" | version (1 byte) | chunk size (u32 BE) | nonce prefix (7 bytes)
    chunk i = AES-GCM(data key, nonce = prefix | i (u32 BE) | last (1 byte),
                      plaintext, ad = header | i (u32 BE) | last (1 byte) | context)

Every chunk is a full ``chunk size`` of plaintext except the last, which is flagged as last
both in its nonce and in its associated data. So a chunk cannot be reordered (its index is
bound), dropped or cut off at the end (the new final chunk was not sealed as last), extended
(the real last chunk is), or moved to another file (the header with its random prefix is
bound) or another recording (the caller's context, the recording id, is bound). An empty
file is still one sealed, empty, last chunk, so "header only" is detected as truncation.

The random 56-bit prefix keeps nonces unique across the few times one recording's data key
encrypts a file (one per encrypted backend, plus retries).

Everything here blocks; the pipeline runs it in a worker thread.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.atomic_write import atomic_output
from storage.errors import DecryptionFailed, EncryptionError

MAGIC = b"PBXB-ENC"
VERSION = 1
DATA_KEY_BYTES = 32
TAG_BYTES = 16
PREFIX_BYTES = 7
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 1024
# A bound on what a (possibly hostile) header may make us allocate per chunk.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_CHUNKS = 2**32

_HEADER = struct.Struct(f">8sBI{PREFIX_BYTES}s")
HEADER_BYTES = _HEADER.size


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


def encrypted_size(plain_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Size of the file ``encrypt_file`` makes from ``plain_size`` bytes (for checks)."""
    chunks = max(1, -(-plain_size // chunk_size))
    return HEADER_BYTES + chunks * TAG_BYTES + plain_size


def is_encrypted(path: Path) -> bool:
    """Whether the file starts like one of ours (says nothing about its integrity)."""
    with path.open("rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def encrypt_file(
    src: Path,
    dest: Path,
    data_key: bytes,
    context: str,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> None:
    """Seal ``src`` into ``dest`` (replaced atomically), bound to ``context``."""
    aead = _cipher(data_key)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise EncryptionError(
            f"chunk size {chunk_size} outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes"
        )
    prefix = os.urandom(PREFIX_BYTES)
    header = _HEADER.pack(MAGIC, VERSION, chunk_size, prefix)
    bound = context.encode()
    with src.open("rb") as plain, atomic_output(dest) as tmp, tmp.open("wb") as out:
        out.write(header)
        current = _read_full(plain, chunk_size)
        index = 0
        while True:
            following = _read_full(plain, chunk_size)
            last = not following
            if index >= MAX_CHUNKS:
                raise EncryptionError(f"{src}: too large for chunk size {chunk_size}")
            out.write(
                aead.encrypt(
                    _nonce(prefix, index, last), current, _associated(header, index, last, bound)
                )
            )
            if last:
                break
            current = following
            index += 1


def decrypt_file(src: Path, dest: Path, data_key: bytes, context: str) -> None:
    """Open ``src`` into ``dest`` (replaced atomically) or raise ``DecryptionFailed``.

    Plaintext is written only to a private temporary file that is removed on failure, so a
    tampered, truncated or foreign file never yields any output, not even its good prefix.
    """
    aead = _cipher(data_key)
    bound = context.encode()
    with src.open("rb") as sealed:
        header = _read_full(sealed, HEADER_BYTES)
        chunk_size, prefix = _parse_header(src, header)
        sealed_size = chunk_size + TAG_BYTES
        with atomic_output(dest) as tmp, tmp.open("wb") as out:
            current = _read_full(sealed, sealed_size)
            if not current:
                raise DecryptionFailed(f"{src}: truncated (no chunk after the header)")
            index = 0
            while True:
                following = _read_full(sealed, sealed_size)
                last = not following
                if index >= MAX_CHUNKS:
                    raise DecryptionFailed(f"{src}: more chunks than a file can have")
                try:
                    plain = aead.decrypt(
                        _nonce(prefix, index, last),
                        current,
                        _associated(header, index, last, bound),
                    )
                except InvalidTag:
                    raise DecryptionFailed(
                        f"{src}: chunk {index} does not authenticate (wrong key or context, "
                        "or the file was altered, truncated or reordered)"
                    ) from None
                out.write(plain)
                if last:
                    break
                current = following
                index += 1


@dataclass(frozen=True)
class SealedLayout:
    """Where each chunk of one encrypted file sits, so a reader can start at any chunk."""

    header: bytes
    chunk_size: int
    prefix: bytes
    sealed_size: int  # of the whole file
    plain_size: int
    chunks: int

    def chunk_of(self, plain_offset: int) -> int:
        return min(plain_offset // self.chunk_size, self.chunks - 1)

    def sealed_offset(self, index: int) -> int:
        """Where chunk ``index`` starts in the file."""
        return HEADER_BYTES + index * (self.chunk_size + TAG_BYTES)

    def sealed_length(self, first: int, last: int) -> int:
        """Bytes of the file holding chunks ``first``..``last`` (inclusive)."""
        end = min(self.sealed_offset(last + 1), self.sealed_size)
        return end - self.sealed_offset(first)


def sealed_layout(header: bytes, sealed_size: int, source: str) -> SealedLayout:
    """The layout of a file from its header and its size (``encrypted_size`` inverted).

    Raises ``DecryptionFailed`` for a header that is not ours or a size no plaintext could
    have produced (a file cut off or padded mid-chunk).
    """
    chunk_size, prefix = _parse_header(Path(source), header[:HEADER_BYTES])
    body = sealed_size - HEADER_BYTES
    chunks = max(1, -(-body // (chunk_size + TAG_BYTES)))
    plain_size = body - chunks * TAG_BYTES
    if plain_size < 0 or encrypted_size(plain_size, chunk_size) != sealed_size:
        raise DecryptionFailed(
            f"{source}: size {sealed_size} is not that of a file sealed in {chunk_size}-byte "
            "chunks (truncated or extended)"
        )
    return SealedLayout(header[:HEADER_BYTES], chunk_size, prefix, sealed_size, plain_size,
                        chunks)


def open_chunks(
    data_key: bytes,
    layout: SealedLayout,
    first: int,
    sealed: bytes,
    context: str,
    source: str,
) -> list[bytes]:
    """Authenticate and decrypt consecutive sealed chunks starting at index ``first``.

    Each chunk's index and "last" flag come from its position in the file, so a chunk
    moved, dropped or cut off does not authenticate. Raises ``DecryptionFailed`` naming
    the first chunk that fails; nothing of that chunk is returned.
    """
    aead = _cipher(data_key)
    bound = context.encode()
    step = layout.chunk_size + TAG_BYTES
    plain: list[bytes] = []
    for start in range(0, len(sealed), step):
        index = first + start // step
        last = index == layout.chunks - 1
        try:
            plain.append(aead.decrypt(
                _nonce(layout.prefix, index, last),
                sealed[start : start + step],
                _associated(layout.header, index, last, bound),
            ))
        except InvalidTag:
            raise DecryptionFailed(
                f"{source}: chunk {index} does not authenticate (wrong key or context, "
                "or the file was altered, truncated or reordered)"
            ) from None
    return plain


def _cipher(data_key: bytes) -> AESGCM:
    if len(data_key) != DATA_KEY_BYTES:
        raise EncryptionError(f"data key must be {DATA_KEY_BYTES} bytes, got {len(data_key)}")
    return AESGCM(data_key)


def _parse_header(src: Path, header: bytes) -> tuple[int, bytes]:
    if len(header) < HEADER_BYTES or not header.startswith(MAGIC):
        raise DecryptionFailed(f"{src}: not a pbx-bridge encrypted file")
    _, version, chunk_size, prefix = _HEADER.unpack(header)
    if version != VERSION:
        raise DecryptionFailed(f"{src}: encryption format version {version} is not supported")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionFailed(f"{src}: implausible chunk size {chunk_size} in the header")
    return chunk_size, prefix


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _associated(header: bytes, index: int, last: bool, context: bytes) -> bytes:
    # Header and index/flag are fixed-size, so the context can follow unframed.
    return header + struct.pack(">IB", index, 1 if last else 0) + context


def _read_full(fh: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes unless the file ends first (a short read is not the end)."""
    data = fh.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = fh.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
