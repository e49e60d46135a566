"""The one object that turns a number, however written, into the subject it belongs to.

Every writer of rows about a caller (the call journal, the request register, the
request actions) goes through a :class:`SubjectIndex`, so the default region and the
secret are chosen in one place and a subject's rows always carry the same key.
"""

from __future__ import annotations

import stat
from pathlib import Path

import phonenumbers

from pbx_bridge.config import PrivacySettings
from pbx_bridge.privacy import mask_number
from pbx_bridge.subjects.numbers import (
    InvalidNumber,
    SubjectKeyer,
    SubjectKeyError,
    normalise,
)

__all__ = [
    "InvalidNumber",
    "SubjectIndex",
    "SubjectKeyError",
    "subject_index_from_settings",
]

SUBJECT_KEY_ENV = "PBX_BRIDGE_PRIVACY__SUBJECT_KEY"


class SubjectIndex:
    """A :class:`SubjectKeyer` bound to the region numbers without a country code belong to."""

    def __init__(self, keyer: SubjectKeyer, default_region: str) -> None:
        self._keyer = keyer
        self.default_region = default_region

    def normalise(self, raw: str) -> str:
        """E.164; raises :class:`InvalidNumber` naming the text and the region."""
        return normalise(raw, self.default_region)

    def key(self, e164: str) -> str:
        return self._keyer.key(e164)

    def key_of(self, raw: str | None) -> str | None:
        """The key of a caller id as Asterisk gave it; None for extensions and 'anonymous'."""
        return self._keyer.key_of(raw, self.default_region)

    def derived_key(self, purpose: str) -> bytes:
        return self._keyer.derive(purpose)

    def subject_key(self, raw: str) -> str:
        """Normalise and key a number an operator typed; raises :class:`InvalidNumber`."""
        return self.key(self.normalise(raw))

    def national(self, e164: str) -> str:
        """Digits as a person of the default region dials them (``05321234567``).

        Numbers of other regions stay in E.164: their national form would be ambiguous
        beside the default region's own numbers.
        """
        try:
            parsed = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return e164
        if phonenumbers.region_code_for_number(parsed) != self.default_region:
            return e164
        formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return "".join(ch for ch in formatted if ch.isdigit())

    def spellings(self, e164: str) -> tuple[str, ...]:
        """The ways a trunk or dialplan may have written this number (``+90212...``,
        ``90212...``, ``0090212...``, ``0212...``, ``212...``), for columns stored as given
        (a DID), so they are matched by equality through an index, never by a pattern.

        The national significant number alone is a spelling only in the default region:
        abroad it would be another country's number.
        """
        try:
            parsed = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return (e164,)
        national = phonenumbers.national_significant_number(parsed)
        international = f"{parsed.country_code}{national}"
        found = [e164, international, f"00{international}", self.national(e164)]
        if phonenumbers.region_code_for_number(parsed) == self.default_region:
            found.append(national)
        return tuple(dict.fromkeys(found))

    def masked(self, e164: str) -> str:
        """The operator's masked form (``0532***4567``; ``+4930***4567`` from abroad)."""
        return mask_number(self.national(e164))


def _check_file_mode(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SubjectKeyError(f"{path}: cannot read subject key: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SubjectKeyError(
            f"{path}: subject key file is accessible by group/others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )


def subject_index_from_settings(privacy: PrivacySettings) -> SubjectIndex:
    """The configured secret (``privacy.subject_key``) wins; else the key file, created once.

    Raises :class:`SubjectKeyError` with a message naming where the bad key came from.
    """
    if privacy.subject_key is not None:
        try:
            keyer = SubjectKeyer.from_base64(privacy.subject_key.get_secret_value())
        except SubjectKeyError as exc:
            raise SubjectKeyError(
                f"privacy.subject_key (or {SUBJECT_KEY_ENV}): {exc}"
            ) from exc
        return SubjectIndex(keyer, privacy.default_region)
    path = privacy.subject_key_file
    _check_file_mode(path)
    try:
        keyer = SubjectKeyer.load_or_create(path)
    except SubjectKeyError as exc:
        message = str(exc)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        raise SubjectKeyError(message) from exc
    except OSError as exc:  # the folder cannot be created or written
        raise SubjectKeyError(f"{path}: cannot create subject key: {exc.strerror}") from exc
    return SubjectIndex(keyer, privacy.default_region)
