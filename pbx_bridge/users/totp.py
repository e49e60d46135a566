"""The TOTP second factor (RFC 6238, 30 s steps, 6 digits): enrolment and checking a code.

The shared secret is sealed in the database (AES-256-GCM, bound to the user's id) under a
key derived from the subject key (``[privacy] subject_key_file``), so a copy of the
database alone cannot mint codes; losing that key means re-enrolling every user.

A code is accepted one step either side of now (clocks drift), and never twice: the
step it belongs to is stored, and any code of that step or an earlier one is a replay.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import time

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pbx_bridge.config import PrivacySettings
from pbx_bridge.subjects.index import subject_index_from_settings

STEP_S = 30
# Steps either side of now a code may belong to (one: up to 30 s of clock drift).
WINDOW = 1
_PURPOSE = "totp-secret"
_NONCE_BYTES = 12


class TotpSecretUnreadable(RuntimeError):
    """A sealed secret that does not open: another subject key, or the row was altered."""


class TotpSealer:
    """Seals and opens TOTP secrets; one per process is enough."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    async def from_settings(cls, privacy: PrivacySettings) -> TotpSealer:
        index = await asyncio.to_thread(subject_index_from_settings, privacy)
        return cls(index.derived_key(_PURPOSE))

    def seal(self, secret: str, user_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("ascii"), user_id.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, user_id: str) -> str:
        try:
            raw = base64.b64decode(sealed, validate=True)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], user_id.encode())
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise TotpSecretUnreadable(
                "TOTP secret cannot be opened (subject key changed?): re-enrol with "
                "`pbx-bridge users totp NAME`"
            ) from exc
        return plain.decode("ascii")


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, user_name: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (usually from a QR code)."""
    return pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(
        name=user_name, issuer_name=issuer
    )


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_S)


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to, within the window around now; None if none.

    The caller still has to refuse a step at or before the last one accepted (a replay).
    """
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    step = current_step(now)
    # Newest first: of two matching steps (cannot happen with distinct codes) the later.
    for candidate in range(step + WINDOW, step - WINDOW - 1, -1):
        if pyotp.utils.strings_equal(totp.at(candidate * STEP_S), code):
            return candidate
    return None
