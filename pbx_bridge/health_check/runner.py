"""Checks run concurrently, each within a time limit, so a dead Asterisk or database
cannot hang the command; a check that overruns or breaks becomes a problem finding."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pbx_bridge.health_check.findings import Finding, problem

log = logging.getLogger(__name__)

CheckFn = Callable[[], Awaitable[list[Finding]]]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn


def backstop(timeout_s: float) -> float:
    """Each step of a check (a request, a probe) has `timeout_s` and reports what did not
    answer; the whole check is stopped only well after that (a loaded host may be slow
    to notice a step's time is up), should a step not."""
    return 2 * timeout_s + 10


async def run_one(check: Check, timeout_s: float) -> list[Finding]:
    try:
        return await asyncio.wait_for(check.run(), backstop(timeout_s))
    except TimeoutError:
        return [problem(check.name, f"no answer within {backstop(timeout_s):g} s (see the "
                        "other lines for what is down; [check] timeout_s sets the limit)")]
    except Exception as exc:  # a bug in one check must not hide the verdict of the others
        log.debug("check %s failed", check.name, exc_info=True)
        return [problem(check.name, f"the check itself failed: {type(exc).__name__}: {exc}")]


async def run_all(checks: Sequence[Check], timeout_s: float) -> list[Finding]:
    """Every check at once; findings come back in the order the checks were given."""
    results = await asyncio.gather(*(run_one(c, timeout_s) for c in checks))
    return [finding for findings in results for finding in findings]
