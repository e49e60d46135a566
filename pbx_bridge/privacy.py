"""Phone numbers are personal data: this is how they appear anywhere a person may read them."""

from __future__ import annotations


def mask_number(number: str | None) -> str:
    """Mask a number in the style operators print (``0532***4567``).

    Enough stays visible for an agent to recognise a caller they are talking to, not
    enough to dial. Short internal numbers (extensions) are not personal data and stay.
    """
    if not number:
        return "-"
    prefix = "+" if number.startswith("+") else ""
    digits = number[len(prefix):]
    if len(digits) <= 4:
        return number
    if len(digits) < 8:
        return f"{prefix}{digits[:1]}***{digits[-2:]}"
    return f"{prefix}{digits[:4]}***{digits[-4:]}"
