"""Withdrawal by keypress and the do-not-record list, below the call: the dialogue's keys,
the recording rule, and what pressing 8 stores (on both databases).

The whole path through Asterisk is in tests/test_e2e_dsar_erasure.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.journal import CallerKey
from pbx_bridge.calls.models import DataSubjectRequest, DoNotRecord
from pbx_bridge.config import LegalBasis, RecordingMode
from pbx_bridge.flow.consent import ConsentDialogue
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.player import Heard, PromptPlayer
from pbx_bridge.flow.policy import (
    ConsentOutcome,
    RecordingPlan,
    confirmation_prompt,
    decide_recording,
)
from pbx_bridge.flow.prompts import Prompt
from pbx_bridge.flow.withdrawal import on_do_not_record_list, withdraw_by_keypress
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from storage.models import AuditEntry, utcnow

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]

INDEX = SubjectIndex(SubjectKeyer(b"\x09" * 32), "TR")


def _prompt(name: str) -> Prompt:
    return Prompt(name, "tr", "v1", "a" * 64, "b" * 64, 1.0, f"sound:pbx-bridge/tr/{name}")


DISCLOSURE, INVALID, OFFER = _prompt("disclosure"), _prompt("invalid-choice"), _prompt(
    "withdrawal-offer"
)


class ScriptedCaller:
    """Stands in for the player: answers each prompt with the next scripted key (or none)."""

    def __init__(self, *keys: str | None) -> None:
        self._keys = list(keys)
        self.heard: list[str] = []

    async def hear(
        self, channel_id: str, media: str, *, barge_in: bool = True, disclosure: bool = False
    ) -> Heard:
        self.heard.append(media.rsplit("/", 1)[-1])
        return Heard(self._next_key(), utcnow())

    async def wait_key(self, channel_id: str, timeout_s: float) -> CallerKey | None:
        return self._next_key()

    def _next_key(self) -> CallerKey | None:
        digit = self._keys.pop(0) if self._keys else None
        return CallerKey(digit, utcnow()) if digit is not None else None


def _dialogue(caller: ScriptedCaller, offer: Prompt | None) -> ConsentDialogue:
    return ConsentDialogue(
        cast(PromptPlayer, caller),
        DISCLOSURE,
        INVALID,
        legal_basis=LegalBasis.CONSENT,
        max_repeats=2,
        timeout_s=1.0,
        withdrawal_offer=offer,
    )


async def test_eight_is_a_wrong_key_where_withdrawal_is_not_offered() -> None:
    caller = ScriptedCaller(None, "8", "1")  # silent through the disclosure, then 8, then 1
    answer = await _dialogue(caller, None).ask("chan")
    assert answer.outcome is ConsentOutcome.GRANTED
    assert caller.heard == ["disclosure", "invalid-choice"]  # never told about 8


async def test_the_offer_follows_the_disclosure_and_eight_withdraws() -> None:
    caller = ScriptedCaller(None, "8")  # the disclosure plays out, 8 during the offer
    answer = await _dialogue(caller, OFFER).ask("chan")
    assert answer.outcome is ConsentOutcome.WITHDRAWN and answer.digit == "8"
    assert caller.heard == ["disclosure", "withdrawal-offer"]


async def test_eight_during_the_disclosure_withdraws_at_once() -> None:
    caller = ScriptedCaller("8")
    answer = await _dialogue(caller, OFFER).ask("chan")
    assert answer.outcome is ConsentOutcome.WITHDRAWN
    assert caller.heard == ["disclosure"]


async def test_a_re_ask_repeats_the_offer_too() -> None:
    caller = ScriptedCaller("5", None, "2")  # a wrong key, the re-ask plays out, then 2
    answer = await _dialogue(caller, OFFER).ask("chan")
    assert answer.outcome is ConsentOutcome.DECLINED
    assert caller.heard == ["disclosure", "invalid-choice", "withdrawal-offer"]


@pytest.mark.parametrize(
    ("basis", "recorded"),
    [
        (LegalBasis.CONSENT, False),
        (LegalBasis.LEGITIMATE_INTEREST, False),
        (LegalBasis.CONTRACT, False),
        (LegalBasis.LEGAL_OBLIGATION, True),
    ],
)
def test_a_withdrawn_caller_is_not_recorded_unless_the_law_requires_it(
    basis: LegalBasis, recorded: bool
) -> None:
    decision = decide_recording(basis, ConsentOutcome.WITHDRAWN, RecordingMode.ALWAYS)
    assert (decision.plan is RecordingPlan.RECORD) is recorded
    expected = None if recorded else "confirm-withdrawn"
    assert confirmation_prompt(basis, ConsentOutcome.WITHDRAWN) == expected


async def test_pressing_eight_lists_the_caller_and_opens_their_request(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ctx = cast(
        FlowContext, SimpleNamespace(sessions=sessions, subjects=INDEX, request_due_days=15)
    )
    assert not await on_do_not_record_list(ctx, INDEX.key_of("05321234567"))

    withdrawal = await withdraw_by_keypress(ctx, "05321234567", "call-1")

    assert withdrawal is not None
    async with sessions() as session:
        request = await session.get(DataSubjectRequest, withdrawal.request_id)
        listed = await session.get(DoNotRecord, INDEX.subject_key("+905321234567"))
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert request is not None and request.reference == withdrawal.reference
    assert (request.type, request.channel, request.opened_by) == ("withdraw", "keypress", "caller")
    assert request.status == "open" and request.number == "+905321234567"
    assert (request.due_at - request.received_at).days == 15
    assert "call-1" in (request.note or "")
    assert listed is not None and listed.reason == "withdraw"
    assert listed.request_id == request.id and listed.added_by == "caller"
    assert {"dsar.opened", "subject.do_not_record_added"} <= set(actions)
    # The same person, however the number is written, is on the list now.
    assert await on_do_not_record_list(ctx, INDEX.key_of("+90 532 123 45 67"))
    assert not await on_do_not_record_list(ctx, None)  # no public number: never listed
