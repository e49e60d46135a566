"""What a check found, and how a list of findings is shown to an admin or a monitor."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"
    # Not checked because something it depends on is already reported as a problem.
    SKIPPED = "skipped"


_LABELS = {Status.OK: "OK", Status.WARNING: "WARN", Status.PROBLEM: "FAIL", Status.SKIPPED: "SKIP"}


@dataclass(frozen=True)
class Finding:
    """One line of the report: `message` names what is wrong and what to fix."""

    check: str
    status: Status
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


def ok(check: str, message: str, **details: Any) -> Finding:
    return Finding(check, Status.OK, message, details)


def warning(check: str, message: str, **details: Any) -> Finding:
    return Finding(check, Status.WARNING, message, details)


def problem(check: str, message: str, **details: Any) -> Finding:
    return Finding(check, Status.PROBLEM, message, details)


def skipped(check: str, because: str) -> Finding:
    return Finding(check, Status.SKIPPED, f"not checked: {because}")


def passed(findings: Iterable[Finding]) -> bool:
    """Warnings do not fail the check; a problem does."""
    return all(f.status is not Status.PROBLEM for f in findings)


def exit_code(findings: Iterable[Finding]) -> int:
    return 0 if passed(findings) else 1


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    return {status.value: sum(1 for f in findings if f.status is status) for status in Status}


def render_line(finding: Finding) -> str:
    return f"{_LABELS[finding.status]:<5}{finding.check}: {finding.message}"


def summary_line(findings: Sequence[Finding]) -> str:
    n = counts(findings)
    warnings = n[Status.WARNING.value]
    warned = f", {warnings} warning{'s' if warnings != 1 else ''} (not failing)" if warnings else ""
    if passed(findings):
        return f"all checks passed{warned}"
    problems = n[Status.PROBLEM.value]
    return f"{problems} problem{'s' if problems != 1 else ''} to fix{warned}"


def render_text(findings: Sequence[Finding]) -> str:
    return "\n".join([*(render_line(f) for f in findings), summary_line(findings)])


def to_document(findings: Sequence[Finding]) -> dict[str, Any]:
    """The `--json` document; its keys are a stable interface for monitoring systems."""
    return {
        "ok": passed(findings),
        "counts": counts(findings),
        "checks": [
            {
                "name": f.check,
                "status": f.status.value,
                "message": f.message,
                "details": dict(f.details),
            }
            for f in findings
        ],
    }
