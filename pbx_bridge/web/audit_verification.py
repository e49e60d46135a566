"""The chain's verification state, as the audit page shows it, and "verify now".

A verification from the console or the API walks the whole chain
(``storage.audit_trail.verify``: its hashing runs in a thread, its reads are the
database driver's, so the event loop keeps serving) and is itself an entry,
``audit.verified``, with who asked and what it found (outcome ``ok`` or ``broken``, the
head, the first entry that does not hold and why). The state shown is the newest such
entry: it is the same for every console process and survives restarts, and the trail
records that someone looked. Each walk is anchored at the head of the newest intact
one, so a rewrite that recomputed every later hash is caught too (as the service's
daily ``audit_watch`` does). One walk at a time per console: a second press waits for
the first and then walks again.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from pbx_bridge.calls.history import iso
from pbx_bridge.web.accounts import Accounts, Principal
from pbx_bridge.web.permissions import AUDIT_READ, AUDIT_VERIFY
from pbx_bridge.web.viewer import Forbidden
from storage.audit_trail import record_event, verify
from storage.models import AuditEntry

VERIFIED = "audit.verified"
TARGET = "audit:trail"
INTACT, BROKEN = "ok", "broken"


@dataclass(frozen=True)
class ChainProblemView:
    seq: int
    kind: str
    message: str


@dataclass(frozen=True)
class ChainState:
    """The newest verification: ``ok`` None when none was ever run from the console."""

    ok: bool | None
    checked: int = 0
    head_seq: int = 0
    head_hash: str = ""
    problem: ChainProblemView | None = None
    verified_at: str | None = None
    verified_by: str | None = None
    # The audit.verified entry that holds this state.
    entry_seq: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok, "checked": self.checked, "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problem": None if self.problem is None else {
                "seq": self.problem.seq, "kind": self.problem.kind,
                "message": self.problem.message,
            },
            "verified_at": self.verified_at, "verified_by": self.verified_by,
            "entry_seq": self.entry_seq,
        }


def _state_of(entry: AuditEntry) -> ChainState:
    try:
        found = json.loads(entry.details)
    except ValueError:
        found = {}
    problem = found.get("problem") if isinstance(found, dict) else None
    return ChainState(
        ok=entry.outcome == INTACT,
        checked=int(found.get("checked", 0)),
        head_seq=int(found.get("head_seq", 0)),
        head_hash=str(found.get("head_hash", "")),
        problem=None if not isinstance(problem, dict) else ChainProblemView(
            int(problem.get("seq", 0)), str(problem.get("kind", "")),
            str(problem.get("message", "")),
        ),
        verified_at=iso(entry.at), verified_by=entry.actor, entry_seq=entry.seq,
    )


async def _newest(session: AsyncSession, *, intact: bool = False) -> AuditEntry | None:
    query = select(AuditEntry).where(AuditEntry.action == VERIFIED)
    if intact:
        query = query.where(AuditEntry.outcome == INTACT)
    return await session.scalar(query.order_by(AuditEntry.seq.desc()).limit(1))


class ChainVerifier:
    """The console's verifications: the last state, and a new walk on request."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], accounts: Accounts) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self._walking = asyncio.Lock()

    async def state(self, principal: Principal) -> ChainState:
        if not (await self._accounts.allowed(principal, AUDIT_READ)).allowed:
            raise Forbidden
        async with self._sessions() as session:
            newest = await _newest(session)
        return ChainState(ok=None) if newest is None else _state_of(newest)

    async def verify_now(self, principal: Principal) -> ChainState:
        """Walk the chain, record what was found as ``audit.verified``; Forbidden
        without ``audit.verify``."""
        if not (await self._accounts.allowed(principal, AUDIT_VERIFY)).allowed:
            raise Forbidden
        async with self._walking, self._sessions() as session:
            intact = await _newest(session, intact=True)
            anchor = None
            if intact is not None:
                last = _state_of(intact)
                if last.head_seq:
                    anchor = (last.head_seq, last.head_hash)
            report = await verify(session, anchor=anchor)
            # verify() read in this session; the append starts its own transaction.
            await session.commit()
            problem = report.problem
            entry = await record_event(
                session, actor=principal.actor, action=VERIFIED, target=TARGET,
                outcome=INTACT if report.ok else BROKEN,
                details={
                    "checked": report.checked, "head_seq": report.head_seq,
                    "head_hash": report.head_hash,
                    "anchor": None if anchor is None else {"seq": anchor[0], "hash": anchor[1]},
                    "problem": None if problem is None else {
                        "seq": problem.seq, "kind": problem.kind, "message": problem.message,
                    },
                },
            )
            await session.commit()
        return _state_of(entry)


def verifier_of(request: Request) -> ChainVerifier:
    """The console's one verifier (``create_app`` puts it on the app)."""
    verifier: ChainVerifier = request.app.state.audit_verifier
    return verifier
