"""Master keys: the few long-lived secrets that wrap every recording's own data key.

Envelope encryption keeps rotation cheap: a new master key only re-wraps the 32-byte data
keys in the database, never the hours of encrypted audio on the backends. Several master
keys can be loaded at once (the active one wraps, any loaded one unwraps), so an old key
stays usable until ``pbx-bridge keys rotate`` has moved every data key off it.

Sources: a folder of ``<key_id>.key`` files (32 random bytes, base64), whose active key is
named by the file ``active`` or is otherwise the newest by name; and/or the environment
variable ``PBX_BRIDGE_MASTER_KEY=<key_id>:<base64>`` (for deployments whose secrets come
from the orchestrator). Loading reads files: call it at start-up or in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.atomic_write import atomic_output
from storage.errors import DecryptionFailed, KeyringError, UnknownMasterKey

MASTER_KEY_ENV = "PBX_BRIDGE_MASTER_KEY"
ACTIVE_FILE = "active"
KEY_SUFFIX = ".key"
MASTER_KEY_BYTES = 32
# Fits data_keys.master_key_id and is safe as a file name.
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_WRAP_VERSION = b"\x01"
_WRAP_NONCE_BYTES = 12
_WRAP_LABEL = b"pbx-bridge data key v1\x00"


class Keyring:
    """Loaded master keys; never prints them (``repr`` names ids only)."""

    __slots__ = ("_active_id", "_keys")

    def __init__(self, keys: Mapping[str, bytes], active_id: str) -> None:
        if active_id not in keys:
            raise KeyringError(f"active master key {active_id!r} is not among the loaded keys")
        for key_id, key in keys.items():
            _check_key_id(key_id, "master key id")
            if len(key) != MASTER_KEY_BYTES:
                raise KeyringError(f"master key {key_id!r} must be {MASTER_KEY_BYTES} bytes")
        self._keys = dict(keys)
        self._active_id = active_id

    @classmethod
    def load(cls, keys_dir: Path | None, environ: Mapping[str, str] = os.environ) -> Keyring:
        """Load from the folder and/or the environment; raise ``KeyringError`` explaining
        what to fix (missing folder, loose permissions, wrong length, no key at all)."""
        keys: dict[str, bytes] = {}
        active: str | None = None
        if keys_dir is not None:
            keys, active = _load_dir(keys_dir)
        env_value = environ.get(MASTER_KEY_ENV)
        if env_value:
            key_id, key = _parse_env(env_value)
            if key_id in keys and keys[key_id] != key:
                raise KeyringError(
                    f"{MASTER_KEY_ENV} and keys_dir {keys_dir} both define master key "
                    f"{key_id!r}, with different bytes"
                )
            keys[key_id] = key
        if not keys:
            where = f"no *{KEY_SUFFIX} file in {keys_dir}" if keys_dir else "storage.keys_dir unset"
            raise KeyringError(
                f"no master key: {where} and {MASTER_KEY_ENV} unset "
                "(create one with `pbx-bridge keys generate`)"
            )
        return cls(keys, active if active is not None else max(keys))

    @property
    def active_id(self) -> str:
        return self._active_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def wrap(self, data_key: bytes, context: str) -> tuple[str, bytes]:
        """Seal a data key under the active master key, bound to ``context`` and the key id,
        so a wrapped key copied onto another recording's row does not unwrap there."""
        nonce = os.urandom(_WRAP_NONCE_BYTES)
        sealed = AESGCM(self._keys[self._active_id]).encrypt(
            nonce, data_key, _wrap_ad(self._active_id, context)
        )
        return self._active_id, _WRAP_VERSION + nonce + sealed

    def unwrap(self, key_id: str, wrapped: bytes, context: str) -> bytes:
        master = self._keys.get(key_id)
        if master is None:
            raise UnknownMasterKey(
                f"master key {key_id!r} is not loaded (loaded: {', '.join(sorted(self._keys))});"
                f" put {key_id}{KEY_SUFFIX} back in keys_dir or set {MASTER_KEY_ENV}"
            )
        if not wrapped.startswith(_WRAP_VERSION) or len(wrapped) < 1 + _WRAP_NONCE_BYTES + 16:
            raise DecryptionFailed(f"wrapped data key for {context!r}: unknown format")
        nonce = wrapped[1 : 1 + _WRAP_NONCE_BYTES]
        try:
            return AESGCM(master).decrypt(
                nonce, wrapped[1 + _WRAP_NONCE_BYTES :], _wrap_ad(key_id, context)
            )
        except InvalidTag:
            raise DecryptionFailed(
                f"wrapped data key for {context!r} does not authenticate under master key "
                f"{key_id!r} (altered, or belongs to another recording)"
            ) from None

    def __repr__(self) -> str:
        return f"Keyring(active={self._active_id!r}, keys={sorted(self._keys)!r})"


def generate_master_key(keys_dir: Path) -> str:
    """Write a new random master key (0600, atomically) and make it the active one.

    Ids start with a UTC timestamp, so "newest by name" is also newest in time.
    """
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_id = f"mk-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    path = keys_dir / f"{key_id}{KEY_SUFFIX}"
    if path.exists():
        raise KeyringError(f"{path} already exists")
    encoded = base64.b64encode(os.urandom(MASTER_KEY_BYTES)) + b"\n"
    with atomic_output(path) as tmp:  # mkstemp makes it 0600 before a byte is written
        tmp.write_bytes(encoded)
    with atomic_output(keys_dir / ACTIVE_FILE) as tmp:
        tmp.write_text(key_id + "\n")
        tmp.chmod(0o644)
    return key_id


def _load_dir(keys_dir: Path) -> tuple[dict[str, bytes], str | None]:
    if not keys_dir.is_dir():
        raise KeyringError(
            f"keys_dir {keys_dir} does not exist (create a key with `pbx-bridge keys generate`)"
        )
    keys: dict[str, bytes] = {}
    for path in sorted(keys_dir.glob(f"*{KEY_SUFFIX}")):
        key_id = path.name[: -len(KEY_SUFFIX)]
        _check_key_id(key_id, f"{path}: file name")
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(
                f"{path}: master key file is accessible by group/others "
                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
            )
        keys[key_id] = _decode_key(path.read_bytes().strip(), str(path))
    active: str | None = None
    active_file = keys_dir / ACTIVE_FILE
    if active_file.exists():
        active = active_file.read_text().strip()
        if active not in keys:
            raise KeyringError(
                f"{active_file} names master key {active!r}, but there is no "
                f"{keys_dir / (active + KEY_SUFFIX)}"
            )
    return keys, active


def _parse_env(value: str) -> tuple[str, bytes]:
    key_id, sep, encoded = value.strip().partition(":")
    if not sep:
        raise KeyringError(f"{MASTER_KEY_ENV} must be <key_id>:<base64 of 32 bytes>")
    _check_key_id(key_id, f"{MASTER_KEY_ENV}: key id")
    return key_id, _decode_key(encoded.encode(), MASTER_KEY_ENV)


def _decode_key(encoded: bytes, source: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{source}: master key is not valid base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise KeyringError(
            f"{source}: master key must be {MASTER_KEY_BYTES} bytes, got {len(key)}"
        )
    return key


def _check_key_id(key_id: str, what: str) -> None:
    if not KEY_ID_PATTERN.match(key_id):
        raise KeyringError(
            f"{what} {key_id!r} is not a valid key id (letters, digits, '_', '.', '-'; "
            "at most 64 characters)"
        )


def _wrap_ad(key_id: str, context: str) -> bytes:
    return _WRAP_LABEL + key_id.encode() + b"\x00" + context.encode()
