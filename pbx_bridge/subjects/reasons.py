"""The reason given for a decision on a data subject's request (a rejection, a refused
approval, a hold): what the subject or the next dpo is told, so never blank, and kept as
given, trimmed. One check for every such decision, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable


def given_reason(
    reason: str,
    refused: Callable[[str], Exception],
    blank: str,
    *,
    most: int | None = None,
) -> str:
    """``reason`` trimmed; raises ``refused(blank)`` when nothing is left, and
    ``refused(...)`` naming ``most`` when it is longer than that."""
    why = reason.strip()
    if not why:
        raise refused(blank)
    if most is not None and len(why) > most:
        raise refused(f"the reason must be at most {most} characters")
    return why
