"""Whether the running service can take a call now, and the gauges read off it live.

``/healthz`` answers 200 only when the service could handle a caller end to end: the ARI
event stream is connected (else Asterisk's Stasis() calls go nowhere) and the database
is reachable (else consent cannot be kept as proof, and callers go to the dialplan
fallback). Anything else is a 503 naming each reason, for a load balancer or an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pbx_bridge.metrics import ARI_CONNECTED, DATABASE_UNAVAILABLE, LIVE_CALLS


class _Calls(Protocol):
    @property
    def live_calls(self) -> int: ...
    @property
    def database_outage(self) -> bool: ...


class _Events(Protocol):
    @property
    def connected(self) -> bool: ...
    @property
    def last_error(self) -> object: ...


class _Refresh(Protocol):
    @property
    def database_error(self) -> str | None: ...


@dataclass(frozen=True)
class HealthReport:
    problems: tuple[str, ...]
    live_calls: int

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, object]:
        if self.healthy:
            return {"status": "ok", "live_calls": self.live_calls}
        return {"status": "unavailable", "problems": list(self.problems),
                "live_calls": self.live_calls}


class ServiceHealth:
    def __init__(self, calls: _Calls, events: _Events, refresh: _Refresh | None) -> None:
        self._calls = calls
        self._events = events
        self._refresh = refresh

    def database_problem(self) -> str | None:
        """One line for the database, whichever part of the service noticed first: the
        gauges' refresh says why it is unreachable, the calls say what waits for it."""
        error = self._refresh.database_error if self._refresh is not None else None
        waiting = self._calls.database_outage
        if error is not None:
            return f"database unreachable: {error}" + (
                "; call records wait for the resync" if waiting else "")
        if waiting:
            return "database unavailable: call records wait for the resync"
        return None

    def report(self) -> HealthReport:
        problems: list[str] = []
        if not self._events.connected:
            why = self._events.last_error
            problems.append("ARI event stream not connected" + (f": {why}" if why else ""))
        database = self.database_problem()
        if database is not None:
            problems.append(database)
        return HealthReport(tuple(problems), self._calls.live_calls)

    def bind_gauges(self) -> None:
        """Live calls, ARI and database state are read at each scrape (no copy to drift)."""
        LIVE_CALLS.set_function(lambda: self._calls.live_calls)
        ARI_CONNECTED.set_function(lambda: float(self._events.connected))
        DATABASE_UNAVAILABLE.set_function(lambda: float(self.database_problem() is not None))
