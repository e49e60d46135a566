"""The agent's feature codes during the conversation: ``*`` then digit(s).

The agent's keypad is the only control an agent has without leaving the call, so the
codes are recognised here, on the agent's channel only: a caller's keys are the
caller's own (the consent answer, the withdrawal key 8) and must never pause a
recording or change what is kept. The parser is pure (digits and times in, an action
out), so every case is unit-tested without a call.

A code completes as soon as its digits leave no longer code possible; one that is also
the start of a longer code completes when the inter-digit time runs out (``expire``).
A pause between digits longer than that time, or a digit that leads nowhere, forgets
what was typed: an agent who presses ``*`` by mistake and talks on loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class FeatureKind(StrEnum):
    RECORD_START = "record-start"  # *1 on an on-demand extension
    RECORD_STOP = "record-stop"  # *2
    PAUSE = "pause"  # *5: PCI pause (card details are being read out)
    RESUME = "resume"  # *6
    RETENTION = "retention"  # *7, *0...: keep this call's recordings per a class


@dataclass(frozen=True)
class FeatureAction:
    kind: FeatureKind
    # The retention class for RETENTION; empty otherwise.
    retention_class: str = ""


class InvalidFeatureCodes(ValueError):
    """The configured codes cannot all be told apart; the message names the clash."""


def build_codes(
    *,
    pause: str,
    resume: str,
    retention: Mapping[str, str],
) -> dict[str, FeatureAction]:
    """Every code (the digits after ``*``) and its action, checked for clashes.

    *1 / *2 are the on-demand codes and stay what they have always been.
    """
    codes: dict[str, FeatureAction] = {
        "1": FeatureAction(FeatureKind.RECORD_START),
        "2": FeatureAction(FeatureKind.RECORD_STOP),
    }
    wanted = [
        (pause, FeatureAction(FeatureKind.PAUSE)),
        (resume, FeatureAction(FeatureKind.RESUME)),
    ]
    wanted += [
        (digits, FeatureAction(FeatureKind.RETENTION, name)) for digits, name in retention.items()
    ]
    for digits, action in wanted:
        if not digits or not all(d in "0123456789#" for d in digits):
            raise InvalidFeatureCodes(
                f"feature code *{digits}: use the digits 0-9 (and #) after the star"
            )
        if digits in codes:
            raise InvalidFeatureCodes(
                f"feature code *{digits} is given twice ({codes[digits].kind} and {action.kind})"
            )
        codes[digits] = action
    return codes


@dataclass
class FeatureCodeParser:
    """Feeds the agent's digits one by one; says which feature a completed code asks for."""

    codes: Mapping[str, FeatureAction]
    inter_digit_s: float
    _typed: str | None = field(default=None)  # digits after the star, None: no star yet
    _last_at: float = field(default=0.0)

    def feed(self, digit: str, now: float) -> FeatureAction | None:
        """The action a code completes with this digit, else None."""
        expired = self.expire(now)
        if digit == "*":
            self._typed, self._last_at = "", now
            return expired  # a code waiting on a longer one completed before this star
        if self._typed is None:
            return expired
        typed = self._typed + digit
        longer = any(code.startswith(typed) and code != typed for code in self.codes)
        if typed in self.codes and not longer:
            self._typed = None
            return self.codes[typed]
        if longer:
            self._typed, self._last_at = typed, now
        else:
            self._typed = None  # leads to no code
        return expired

    def expire(self, now: float) -> FeatureAction | None:
        """After the inter-digit time: a complete code that was waiting fires; else forgotten."""
        if self._typed is None or now - self._last_at <= self.inter_digit_s:
            return None
        typed, self._typed = self._typed, None
        return self.codes.get(typed)

    def waiting_until(self) -> float | None:
        """When ``expire`` next has something to decide (a code part-typed), else None."""
        return None if self._typed is None else self._last_at + self.inter_digit_s
