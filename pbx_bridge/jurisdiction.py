"""Where recordings may go: a route's or the operator's jurisdiction rule against the
storage targets. KVKK art. 9 restricts transfers abroad; a configuration that would send
a route's recordings to a backend in another country is refused, not discovered later.
"""

from __future__ import annotations

from collections.abc import Iterable

from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import StorageSettings


class JurisdictionViolation(ValueError):
    """A route requires a country that some storage target is not in."""


def violations(routes: Iterable[ResolvedRoute], storage: StorageSettings) -> list[str]:
    """One sentence per route whose recordings would leave its required country."""
    problems = []
    for route in routes:
        wanted = route.require_jurisdiction
        if not wanted:
            continue
        for target in storage.targets:
            where = storage.jurisdiction_of(target)
            if where != wanted:
                problems.append(
                    f"route {route.did} requires {wanted}, but storage target {target!r} "
                    f"keeps recordings in {where}"
                )
    return problems


def check_routes(routes: Iterable[ResolvedRoute], storage: StorageSettings) -> None:
    problems = violations(routes, storage)
    if problems:
        raise JurisdictionViolation("; ".join(problems))
