"""A call's reference number: eight random digits and a Damm check digit.

The caller hears it digit by digit in the notice and can quote it in a request (the
Hungarian authority asks for an identifier in the IVR text), so it is short and all
digits. The check digit (Damm's quasigroup) catches every single wrong digit and every
swap of two neighbours, so a mistyped reference is refused as such instead of finding
somebody else's call. It is drawn at random when the call opens and written in the same
INSERT as the call row (no extra round trip); the unique index decides, and the rare
collision draws again.
"""

from __future__ import annotations

import re
import secrets

BODY_DIGITS = 8
LENGTH = BODY_DIGITS + 1
_SEPARATORS = re.compile(r"[\s.-]")

# Damm's table: a totally anti-symmetric quasigroup of order 10.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class InvalidReference(ValueError):
    """Not a call reference: the message says what is wrong with it."""


def damm_digit(digits: str) -> str:
    """The check digit that makes ``digits`` + it pass :func:`damm_valid`."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][int(char)]
    return str(interim)


def damm_valid(digits: str) -> bool:
    """True when the last digit is the Damm check digit of the others."""
    return digits.isdigit() and damm_digit(digits) == "0"


def new_reference() -> str:
    """A fresh reference: eight random digits (secrets: not guessable from the last one)
    and their check digit."""
    body = f"{secrets.randbelow(10**BODY_DIGITS):0{BODY_DIGITS}d}"
    return body + damm_digit(body)


def parse_reference(text: str) -> str:
    """The reference as stored (nine digits), from what a person typed (spaces, dots
    and dashes between the digits are allowed); raises :class:`InvalidReference`."""
    digits = _SEPARATORS.sub("", text.strip())
    if not digits.isascii() or not digits.isdigit() or len(digits) != LENGTH:
        raise InvalidReference(
            f"reference {text!r}: a call reference is {LENGTH} digits "
            f"({BODY_DIGITS} and a check digit)"
        )
    if not damm_valid(digits):
        raise InvalidReference(
            f"reference {text!r}: the check digit does not match; a digit is wrong or two "
            "are swapped"
        )
    return digits


def spoken_digits(reference: str) -> tuple[str, ...]:
    """The reference as the caller hears it: one digit at a time."""
    return tuple(reference)
