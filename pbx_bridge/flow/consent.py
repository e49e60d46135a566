"""The disclosure and the caller's answer: 1 consent, 2 decline, 9 repeat, silence times out.

Where the basis is not consent (legitimate interest, contract) 2 objects and 1 is only
"go on": no consent is asked, so none is given (``policy.outcome_of_key``).

Where the route offers withdrawal by keypress, a short offer follows each disclosure (and
each re-ask) and 8 withdraws consent for this and every later call; elsewhere 8 is just
another wrong key, so no caller can withdraw by a key nobody told them about.

A key that arrived before the disclosure's first audio answers nothing (it was pressed
uninformed, ``policy.key_answers``): the caller hears the disclosure whole and is asked
as usual, and the key stays in the answer's key history, marked early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pbx_bridge.calls.journal import CallerKey
from pbx_bridge.config import LegalBasis
from pbx_bridge.flow.player import PromptPlayer
from pbx_bridge.flow.policy import ConsentOutcome, outcome_of_key
from pbx_bridge.flow.prompts import Prompt
from storage.models import utcnow

KEY_CONSENT = "1"
KEY_DECLINE = "2"
KEY_REPEAT = "9"
KEY_WITHDRAW = "8"


@dataclass(frozen=True)
class ConsentAnswer:
    outcome: ConsentOutcome
    digit: str | None
    times_played: int
    prompt_started_at: datetime
    decided_at: datetime
    # The disclosure's first audio (None: not asked, or Asterisk never said it started).
    disclosure_started_at: datetime | None = None
    # Every key of the dialogue in order, early ones (before that first audio) included.
    keys: tuple[CallerKey, ...] = ()


class ConsentDialogue:
    """Asks once, repeats on 9 up to ``max_repeats`` times, re-asks on any other key.

    The timeout counts from the end of the last prompt, so a long disclosure never eats
    into the caller's time to answer.
    """

    def __init__(
        self,
        player: PromptPlayer,
        disclosure: Prompt,
        invalid_choice: Prompt,
        *,
        legal_basis: LegalBasis,
        max_repeats: int,
        timeout_s: float,
        withdrawal_offer: Prompt | None = None,
    ) -> None:
        self._player = player
        self._basis = legal_basis
        self._disclosure = disclosure
        self._invalid = invalid_choice
        self._max_repeats = max_repeats
        self._timeout_s = timeout_s
        self._offer = withdrawal_offer

    async def _play(self, channel_id: str, prompt: Prompt) -> CallerKey | None:
        """The prompt, then the withdrawal offer if any; a key during either answers."""
        key = (await self._player.hear(channel_id, prompt.media)).key
        return key or await self._offer_withdrawal(channel_id)

    async def _offer_withdrawal(self, channel_id: str) -> CallerKey | None:
        if self._offer is None:
            return None
        return (await self._player.hear(channel_id, self._offer.media)).key

    async def ask(self, channel_id: str) -> ConsentAnswer:
        started = utcnow()
        times_played = 1
        first = await self._player.hear(channel_id, self._disclosure.media, disclosure=True)
        keys = list(first.early_keys)

        def answer(outcome: ConsentOutcome, digit: str | None) -> ConsentAnswer:
            return ConsentAnswer(
                outcome, digit, times_played, started, utcnow(), first.started_at, tuple(keys)
            )

        key = first.key or await self._offer_withdrawal(channel_id)
        while True:
            if key is None:
                key = await self._player.wait_key(channel_id, self._timeout_s)
            if key is None:
                return answer(ConsentOutcome.TIMEOUT, None)
            keys.append(key)
            digit = key.digit
            if digit in (KEY_CONSENT, KEY_DECLINE):
                return answer(outcome_of_key(self._basis, digit), digit)
            if digit == KEY_WITHDRAW and self._offer is not None:
                return answer(ConsentOutcome.WITHDRAWN, digit)
            if digit == KEY_REPEAT and times_played <= self._max_repeats:
                times_played += 1
                key = await self._play(channel_id, self._disclosure)
                continue
            key = await self._play(channel_id, self._invalid)
