"""What became of ringing an extension (or a whole ring group), as Asterisk reports it."""

from __future__ import annotations

from enum import StrEnum


class DialResult(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    UNREACHABLE = "unreachable"


# A Dial event's final status.
DIALSTATUS = {
    "ANSWER": DialResult.ANSWERED,
    "BUSY": DialResult.BUSY,
    "NOANSWER": DialResult.NO_ANSWER,
    "CANCEL": DialResult.NO_ANSWER,
    "CHANUNAVAIL": DialResult.UNREACHABLE,
    "CONGESTION": DialResult.UNREACHABLE,
}

# Q.850 causes seen on ChannelDestroyed when no Dial status reached us first.
CAUSES = {17: DialResult.BUSY, 18: DialResult.NO_ANSWER, 19: DialResult.NO_ANSWER}

__all__ = ["CAUSES", "DIALSTATUS", "DialResult"]
