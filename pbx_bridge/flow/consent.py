"""The disclosure and the caller's answer: 1 consent, 2 decline, 9 repeat, silence times out.

Where the route offers withdrawal by keypress, a short offer follows each disclosure (and
each re-ask) and 8 withdraws consent for this and every later call; elsewhere 8 is just
another wrong key, so no caller can withdraw by a key nobody told them about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pbx_bridge.flow.player import PromptPlayer
from pbx_bridge.flow.policy import ConsentOutcome
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
        max_repeats: int,
        timeout_s: float,
        withdrawal_offer: Prompt | None = None,
    ) -> None:
        self._player = player
        self._disclosure = disclosure
        self._invalid = invalid_choice
        self._max_repeats = max_repeats
        self._timeout_s = timeout_s
        self._offer = withdrawal_offer

    async def _play(self, channel_id: str, prompt: Prompt) -> str | None:
        """The prompt, then the withdrawal offer if any; a key during either answers."""
        digit = await self._player.play(channel_id, prompt.media, barge_in=True)
        if digit is None and self._offer is not None:
            digit = await self._player.play(channel_id, self._offer.media, barge_in=True)
        return digit

    async def ask(self, channel_id: str) -> ConsentAnswer:
        started = utcnow()
        times_played = 1
        digit = await self._play(channel_id, self._disclosure)
        while True:
            if digit is None:
                digit = await self._player.wait_digit(channel_id, self._timeout_s)
            if digit is None:
                return ConsentAnswer(
                    ConsentOutcome.TIMEOUT, None, times_played, started, utcnow()
                )
            if digit in (KEY_CONSENT, KEY_DECLINE):
                outcome = (
                    ConsentOutcome.GRANTED if digit == KEY_CONSENT else ConsentOutcome.DECLINED
                )
                return ConsentAnswer(outcome, digit, times_played, started, utcnow())
            if digit == KEY_WITHDRAW and self._offer is not None:
                return ConsentAnswer(
                    ConsentOutcome.WITHDRAWN, digit, times_played, started, utcnow()
                )
            if digit == KEY_REPEAT and times_played <= self._max_repeats:
                times_played += 1
                digit = await self._play(channel_id, self._disclosure)
                continue
            digit = await self._play(channel_id, self._invalid)
