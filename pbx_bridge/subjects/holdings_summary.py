"""What is held about a subject now, as counts: the register's view of the holdings
(``dsar show`` and the console's request page show the same), never the detail, which is
the access report's job."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pbx_bridge.calls.history import iso
from pbx_bridge.subjects.lookup import SubjectHoldings
from storage.models import RecordingStatus


def _counted(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


@dataclass(frozen=True)
class HeldSummary:
    """Counts only: the detail is the access report's job, not the register's."""

    calls: int
    first_call_at: str | None
    last_call_at: str | None
    calls_redacted: int
    consents_by_decision: dict[str, int]
    recordings_held: int
    recordings_on_legal_hold: int
    recordings_deleted: int
    held_by_legal_basis: dict[str, int]
    tombstones: int
    requests: list[str]

    @classmethod
    def of(cls, held: SubjectHoldings) -> HeldSummary:
        gone = (RecordingStatus.DELETED.value, RecordingStatus.DELETING.value)
        kept = [r for r in held.recordings if r.status not in gone]
        return cls(
            calls=len(held.calls),
            first_call_at=iso(held.calls[0].started_at) if held.calls else None,
            last_call_at=iso(held.calls[-1].started_at) if held.calls else None,
            calls_redacted=sum(1 for c in held.calls if c.redaction is not None),
            consents_by_decision=_counted(c.decision for c in held.consents),
            recordings_held=len(kept),
            recordings_on_legal_hold=sum(1 for r in kept if r.hold_reason is not None),
            recordings_deleted=len(held.recordings) - len(kept),
            held_by_legal_basis=_counted(r.legal_basis for r in kept),
            tombstones=len(held.tombstones),
            requests=[f"{q.reference} {q.type} {q.status}" for q in held.requests],
        )

    def lines(self) -> list[tuple[str, str]]:
        calls = str(self.calls)
        if self.calls:
            calls += f" ({self.first_call_at} .. {self.last_call_at})"
        if self.calls_redacted:
            calls += f", {self.calls_redacted} redacted"
        decisions = self.consents_by_decision
        return [
            ("calls", calls),
            ("consents", f"{sum(decisions.values())}{_detail(decisions)}"),
            (
                "recordings",
                f"{self.recordings_held} held ({self.recordings_on_legal_hold} on legal hold),"
                f" {self.recordings_deleted} deleted",
            ),
            ("held by basis", _detail(self.held_by_legal_basis).strip(" ()") or "-"),
            ("deletion records", str(self.tombstones)),
            ("requests", ", ".join(self.requests) or "-"),
        ]


def _detail(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{name} {n}" for name, n in counts.items()) + ")"
