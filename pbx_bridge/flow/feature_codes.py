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

A transfer code (``*8`` blind, ``*9`` attended by default) is followed by the target
extension and ``#``, as on a desk phone: the digits end with ``#``, or, as Asterisk's
``transferdigittimeout`` does, when the agent stops typing for the target-digit time.
``*`` while typing the extension abandons it (and starts a new code).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class FeatureKind(StrEnum):
    RECORD_START = "record-start"  # *1 on an on-demand extension
    RECORD_STOP = "record-stop"  # *2
    PAUSE = "pause"  # *5: PCI pause (card details are being read out)
    RESUME = "resume"  # *6
    RETENTION = "retention"  # *7, *0...: keep this call's recordings per a class
    BLIND_TRANSFER = "blind-transfer"  # *8 + extension + #: the caller goes to it
    ATTENDED_TRANSFER = "attended-transfer"  # *9 + extension + #: talk to it first


TRANSFER_KINDS = frozenset({FeatureKind.BLIND_TRANSFER, FeatureKind.ATTENDED_TRANSFER})
# Longer than any dial plan's extension: the digits typed past it are refused, not dialled.
MAX_TARGET_DIGITS = 20


@dataclass(frozen=True)
class FeatureAction:
    kind: FeatureKind
    # The retention class for RETENTION; empty otherwise.
    retention_class: str = ""
    # The extension typed after a transfer code (may be empty or too long: the flow
    # refuses it, telling the agent); empty otherwise.
    extension: str = ""


class InvalidFeatureCodes(ValueError):
    """The configured codes cannot all be told apart; the message names the clash."""


def build_codes(
    *,
    pause: str,
    resume: str,
    retention: Mapping[str, str],
    blind_transfer: str = "",
    attended_transfer: str = "",
) -> dict[str, FeatureAction]:
    """Every code (the digits after ``*``) and its action, checked for clashes.

    *1 / *2 are the on-demand codes and stay what they have always been. An empty
    transfer code turns that transfer off. A transfer code is followed by digits, so
    it may neither begin another code nor be begun by one (``*8`` and ``*81`` could not
    tell "transfer to 1..." from the other code).
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
    transfers = [
        (digits, FeatureAction(kind))
        for digits, kind in ((blind_transfer, FeatureKind.BLIND_TRANSFER),
                             (attended_transfer, FeatureKind.ATTENDED_TRANSFER))
        if digits
    ]
    wanted += transfers
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
    for digits, action in transfers:
        for other, other_action in codes.items():
            if other != digits and (other.startswith(digits) or digits.startswith(other)):
                raise InvalidFeatureCodes(
                    f"feature code *{digits} ({action.kind}) is followed by an extension, so "
                    f"*{other} ({other_action.kind}) cannot be told apart from it"
                )
        if "#" in digits:
            raise InvalidFeatureCodes(
                f"feature code *{digits} ({action.kind}): # ends the extension after it; "
                "use the digits 0-9"
            )
    return codes


@dataclass
class FeatureCodeParser:
    """Feeds the agent's digits one by one; says which feature a completed code asks for."""

    codes: Mapping[str, FeatureAction]
    inter_digit_s: float
    # How long the agent may pause while typing a transfer's extension (None: as long
    # as between a code's digits).
    target_digit_s: float | None = None
    _typed: str | None = field(default=None)  # digits after the star, None: no star yet
    _last_at: float = field(default=0.0)
    # A transfer code's action while its extension is typed, and the digits so far.
    _transfer: FeatureAction | None = field(default=None)
    _target: str = field(default="")

    def feed(self, digit: str, now: float) -> FeatureAction | None:
        """The action a code completes with this digit, else None."""
        expired = self.expire(now)
        if digit == "*":
            self._transfer = None  # abandons an extension being typed
            self._typed, self._last_at = "", now
            return expired  # a code waiting on a longer one completed before this star
        if self._transfer is not None:
            return self._target_digit(digit, now)
        if self._typed is None:
            return expired
        typed = self._typed + digit
        longer = any(code.startswith(typed) and code != typed for code in self.codes)
        if typed in self.codes and not longer:
            self._typed = None
            action = self.codes[typed]
            if action.kind in TRANSFER_KINDS:
                self._transfer, self._target, self._last_at = action, "", now
                return expired
            return action
        if longer:
            self._typed, self._last_at = typed, now
        else:
            self._typed = None  # leads to no code
        return expired

    def _target_digit(self, digit: str, now: float) -> FeatureAction | None:
        assert self._transfer is not None
        if digit == "#":
            return self._typed_transfer()
        self._target, self._last_at = self._target + digit, now
        if len(self._target) > MAX_TARGET_DIGITS:
            return self._typed_transfer()  # refused by the flow, with a prompt
        return None

    def _typed_transfer(self) -> FeatureAction:
        assert self._transfer is not None
        action = replace(self._transfer, extension=self._target)
        self._transfer, self._target = None, ""
        return action

    def _target_wait(self) -> float:
        return self.inter_digit_s if self.target_digit_s is None else self.target_digit_s

    def expire(self, now: float) -> FeatureAction | None:
        """After the inter-digit time: a complete code that was waiting fires; else forgotten.

        A transfer's extension typed but not ended with ``#`` is dialled once the agent
        stops typing (as Asterisk does); a transfer code with no digits after it is
        forgotten.
        """
        if self._transfer is not None:
            if now - self._last_at <= self._target_wait():
                return None
            if not self._target:
                self._transfer = None
                return None
            return self._typed_transfer()
        if self._typed is None or now - self._last_at <= self.inter_digit_s:
            return None
        typed, self._typed = self._typed, None
        return self.codes.get(typed)

    def waiting_until(self) -> float | None:
        """When ``expire`` next has something to decide (a code part-typed), else None."""
        if self._transfer is not None:
            return self._last_at + self._target_wait()
        return None if self._typed is None else self._last_at + self.inter_digit_s
