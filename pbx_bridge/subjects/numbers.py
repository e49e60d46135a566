"""One subject, however the number was written: E.164 and a keyed hash of it.

``0532 123 45 67``, ``+90 532 123 4567`` and ``905321234567`` are the same person. Rows
carry a keyed hash (HMAC-SHA256) of the E.164 form beside the number, so a subject's rows
are found through an index, and still found after erasure or anonymisation removed the
number itself. Keyed rather than plain: a plain hash of a phone number is reversed by
hashing every number of a country in minutes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import phonenumbers

KEY_BYTES = 32


class InvalidNumber(ValueError):
    """The text is not a phone number we can place in E.164."""


class SubjectKeyError(RuntimeError):
    """The secret behind subject keys is missing, unreadable or too short."""


def normalise(raw: str, default_region: str = "TR") -> str:
    """E.164 (``+905321234567``) for a number as a caller, an agent or a letter wrote it.

    Digits that start with the country code but no ``+`` or ``00`` (``905321234567``) are
    read as international when they are not a valid national number of the default region.
    """
    text = raw.strip()
    if not text or not any(ch.isdigit() for ch in text):
        raise InvalidNumber(f"{raw!r} is not a phone number")
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith(("+", "00")) and digits == text.replace(" ", "").replace("-", ""):
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, default_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidNumber(
        f"{raw!r} is not a valid phone number (read with default region {default_region})"
    )


def region_of(raw: str | None, default_region: str = "TR") -> str | None:
    """The country (ISO 3166 code, e.g. ``GB``) a number belongs to, None if no public
    number: a caller's language may follow it."""
    e164 = try_normalise(raw, default_region)
    if e164 is None:
        return None
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return str(region) if region and region != "ZZ" else None


def try_normalise(raw: str | None, default_region: str = "TR") -> str | None:
    """E.164, or None for what is no public number (an extension, 'anonymous', empty)."""
    if not raw:
        return None
    try:
        return normalise(raw, default_region)
    except InvalidNumber:
        return None


class SubjectKeyer:
    """Turns an E.164 number into the subject key stored on every row about that person."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise SubjectKeyError(f"subject key must be at least {KEY_BYTES} bytes")
        self._secret = secret

    def key(self, e164: str) -> str:
        return hmac.new(self._secret, e164.encode(), hashlib.sha256).hexdigest()

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for another purpose (sealing TOTP secrets), independent of the
        subject keys: HMAC of a label no number can produce, so one secret to back up."""
        label = f"pbx-bridge/derived-key/1/{purpose}".encode()
        return hmac.new(self._secret, label, hashlib.sha256).digest()

    def key_of(self, raw: str | None, default_region: str = "TR") -> str | None:
        """The subject key of a number as written, or None if it is no public number."""
        e164 = try_normalise(raw, default_region)
        return None if e164 is None else self.key(e164)

    @classmethod
    def from_base64(cls, value: str) -> SubjectKeyer:
        try:
            secret = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SubjectKeyError("subject key is not valid base64") from exc
        return cls(secret)

    @classmethod
    def load_or_create(cls, path: Path) -> SubjectKeyer:
        """Read the key file; create it (0600, atomically) if it does not exist yet.

        Losing this file makes every subject unfindable by number: it belongs in the
        same backup as the database.
        """
        try:
            return cls.from_base64(path.read_text(encoding="ascii"))
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            raise SubjectKeyError(f"{path}: cannot read subject key: {exc}") from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(KEY_BYTES)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, base64.b64encode(secret) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process created meanwhile
        except FileExistsError:
            os.unlink(tmp)
            return cls.from_base64(path.read_text(encoding="ascii"))
        os.unlink(tmp)
        return cls(secret)
