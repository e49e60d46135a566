"""When a scheduled backend takes its batch: "immediate", "hourly", "daily" or cron.

Customers who want one nightly transfer to their FTP server (as VIPeX does) set a cron
expression; copies for that backend wait until its next slot. Cron is read in the
machine's local time, like cron itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# minute, hour, day of month, month, day of week (0 or 7 = Sunday)
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
# A cron expression that matches nothing within this horizon (e.g. 30 February) is refused.
_HORIZON = timedelta(days=366 * 4)


class ScheduleError(ValueError):
    """The schedule cannot be read or never fires."""


def _field(spec: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in spec.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ScheduleError(f"step must be positive in {spec!r}")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = int(first), int(last)
        else:
            start = end = int(base)
        if not (low <= start <= end <= high):
            raise ScheduleError(f"{spec!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class CronSchedule:
    def __init__(self, expression: str) -> None:
        fields = expression.split()
        if len(fields) != 5:
            raise ScheduleError(f"cron needs 5 fields, got {expression!r}")
        try:
            parsed = [_field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True)]
        except ValueError as exc:
            raise ScheduleError(f"cannot read cron {expression!r}: {exc}") from exc
        self.minutes, self.hours, self.days, self.months, weekdays = parsed
        # isoweekday(): Monday 1 .. Sunday 7; cron's Sunday is 0 or 7.
        self.weekdays = frozenset(7 if d == 0 else d for d in weekdays)
        # Cron's rule: if both day fields are restricted, either may match.
        self._dom_any = fields[2] == "*"
        self._dow_any = fields[4] == "*"

    def _day_matches(self, moment: datetime) -> bool:
        dom = moment.day in self.days
        dow = moment.isoweekday() in self.weekdays  # Monday 1 .. Sunday 7
        if self._dom_any and self._dow_any:
            return True
        if self._dom_any:
            return dow
        if self._dow_any:
            return dom
        return dom or dow

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after`` (in its time zone)."""
        moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = after + _HORIZON
        while moment <= limit:
            if moment.month not in self.months:
                moment = (moment.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(
                    day=1
                )
                continue
            if not self._day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
                continue
            if moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
                continue
            return moment
        raise ScheduleError("the cron expression never fires")


def next_slot(schedule: str, after: datetime) -> datetime:
    """When a copy for a backend with this schedule may be made, at the earliest."""
    if schedule == "immediate":
        return after
    local = after.astimezone()
    if schedule == "hourly":
        return (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(
            after.tzinfo
        )
    if schedule == "daily":
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight + timedelta(days=1)).astimezone(after.tzinfo)
    return CronSchedule(schedule).next_after(local).astimezone(after.tzinfo)
