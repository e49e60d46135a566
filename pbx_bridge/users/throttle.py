"""Failed sign-ins per client address: past a limit, that address is refused unheard.

Account lockout stops guessing one user's password; this stops one address trying a
password against many names (which locks nobody). It lives in the web process's memory:
one console process serves the sign-in page, and a restart forgetting the counts only
gives an attacker a fresh window, not more than the limit per window.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta

# Addresses remembered at most; the quietest are forgotten first (bounded memory under a
# spray from many addresses).
MAX_ADDRESSES = 100_000


class IpThrottle:
    def __init__(self, max_failures: int, window: timedelta) -> None:
        self._max = max_failures
        self._window = window
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def _recent(self, ip: str, now: datetime) -> deque[datetime] | None:
        times = self._failures.get(ip)
        if times is None:
            return None
        while times and now - times[0] >= self._window:
            times.popleft()
        if not times:
            del self._failures[ip]
            return None
        return times

    def blocked(self, ip: str | None, now: datetime) -> bool:
        if ip is None:
            return False
        times = self._recent(ip, now)
        return times is not None and len(times) >= self._max

    def failed(self, ip: str | None, now: datetime) -> bool:
        """Count a failure; True when this one puts the address over the limit."""
        if ip is None:
            return False
        times = self._recent(ip, now)
        if times is None:
            times = self._failures[ip] = deque()
        times.append(now)
        self._failures.move_to_end(ip)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)
        return len(times) == self._max
