"""What the caller hears, composed per route: a pure function of the route's facts.

One fixed disclosure text cannot be true for every route: "we record your voice only with
your explicit consent" is false where a legal obligation or a legitimate interest is the
basis, and "press 2 if you do not want the call recorded" is an empty offer where the
call is recorded whatever the caller presses. So the disclosure is a sequence of prompt
segments chosen from the legal basis, the announcement mode and the retention class's
days, with the call's reference number read digit by digit; each segment is a prompt of
its own (``prompts/{language}/{name}.txt``), so each keeps its version and sha256 as
proof of what the caller heard.

:func:`untruthful` names the route settings no composition can make true (``route set``
refuses them, and so does the configuration's default route).
"""

from __future__ import annotations

from dataclasses import dataclass

from pbx_bridge.config import Announcement, LegalBasis

# The parts of the full disclosure, in the order they are heard.
INTRO = "disclosure-intro"
RECIPIENTS = "disclosure-recipients"
RIGHTS = "disclosure-rights"
BASIS = {basis: f"basis-{basis.value}" for basis in LegalBasis}
NOTICE = {basis: f"notice-{basis.value}" for basis in LegalBasis}
RETENTION_BEFORE = "retention-before"
RETENTION_AFTER = "retention-after"  # "... days, then deleted"
RETENTION_AFTER_ONE = "retention-after-one"  # "... day, then deleted"
RETENTION_NONE = "retention-none"  # a class of 0 days: deleted when the call ends
REFERENCE_INTRO = "reference-intro"
CHOICES_CONSENT = "choices-consent"  # 1 consent, 2 refuse, 9 repeat
CHOICES_OBJECTION = "choices-objection"  # 2 object, 9 repeat (no consent is asked)
FULL_NOTICE_OFFER = "notice-full-offer"  # notice-only: "press 0 for the full notice"
INVALID_CHOICE = {basis: "invalid-choice" for basis in LegalBasis} | {
    LegalBasis.LEGITIMATE_INTEREST: "invalid-choice-objection",
    LegalBasis.CONTRACT: "invalid-choice-objection",
}
LANGUAGE_CHOICE = "language-choice"  # "For English, press" (then the key's number)
KEY_FULL_NOTICE = "0"

# Spoken numbers: 0-19, the tens, 100 and "hundred", 1000 and "thousand" (prompts/*/
# number-*.txt). The reference's digits are number-0 .. number-9.
NUMBER_HUNDRED = "number-hundred"
NUMBER_THOUSAND = "number-thousand"
NUMBER_PROMPTS: tuple[str, ...] = (
    *(f"number-{n}" for n in range(20)),
    *(f"number-{n}" for n in range(20, 100, 10)),
    "number-100",
    NUMBER_HUNDRED,
    "number-1000",
    NUMBER_THOUSAND,
)
MAX_SPOKEN = 999_999

# Every segment the composition may ask for: each language folder has them all.
SEGMENT_PROMPTS: tuple[str, ...] = (
    INTRO,
    RECIPIENTS,
    RIGHTS,
    *BASIS.values(),
    *NOTICE.values(),
    RETENTION_BEFORE,
    RETENTION_AFTER,
    RETENTION_AFTER_ONE,
    RETENTION_NONE,
    REFERENCE_INTRO,
    CHOICES_CONSENT,
    CHOICES_OBJECTION,
    FULL_NOTICE_OFFER,
    *NUMBER_PROMPTS,
)

_OBJECTION_BASES = (LegalBasis.LEGITIMATE_INTEREST, LegalBasis.CONTRACT)
_ASKING = (Announcement.BEFORE_CONNECT, Announcement.ON_CONNECT)


@dataclass(frozen=True)
class DisclosureFacts:
    """What the composition depends on: the route's rules and this call's reference."""

    legal_basis: LegalBasis
    retention_days: int
    reference: str | None = None


class UntruthfulRoute(ValueError):
    """Route settings that would make the prompt say something false."""


def untruthful(
    announcement: Announcement, legal_basis: LegalBasis, *, offer_withdrawal: bool = False
) -> list[str]:
    """Why these settings would make the caller hear something false (empty: none).

    - a legal obligation records whatever the caller presses: asking (before-connect,
      on-connect) would offer a choice that changes nothing, and so would key 8;
    - under consent a caller who is not asked is never recorded: a notice-only route
      would announce a recording that never happens;
    - key 8 withdraws *consent*: under legitimate interest or contract there is none to
      withdraw (the caller objects with 2 instead).
    """
    problems = []
    if legal_basis is LegalBasis.LEGAL_OBLIGATION and announcement in _ASKING:
        problems.append(
            f"--legal-basis legal-obligation with --announcement {announcement.value}: "
            "the call is recorded whatever the caller presses, so asking would offer a "
            "choice that changes nothing; use --announcement notice-only"
        )
    if legal_basis is LegalBasis.CONSENT and announcement is Announcement.NOTICE_ONLY:
        problems.append(
            "--legal-basis consent with --announcement notice-only: nobody is asked, so "
            "no call is ever recorded, while the notice says it is; use before-connect "
            "or on-connect to ask"
        )
    if offer_withdrawal and legal_basis is not LegalBasis.CONSENT:
        problems.append(
            f"--offer-withdrawal with --legal-basis {legal_basis.value}: key 8 withdraws "
            "consent, and this route does not record on consent"
            + (
                " (a caller objects with 2)"
                if legal_basis in _OBJECTION_BASES
                else " (a legal obligation records anyway)"
            )
            + "; use --no-offer-withdrawal"
        )
    return problems


def outbound_untruthful(announcement: Announcement, legal_basis: LegalBasis) -> list[str]:
    """Why an outbound route's settings would make the callee hear something false.

    The same rules as a route's (:func:`untruthful`), and ``on-connect`` has no meaning
    out: the callee answers first and is always announced to before the agent joins
    (``before-connect`` asks, ``notice-only`` tells).
    """
    problems = untruthful(announcement, legal_basis)
    if announcement is Announcement.ON_CONNECT:
        problems.append(
            "--announcement on-connect on an outbound route: the callee is always "
            "announced to on answer, before the agent is connected; use before-connect "
            "to ask, notice-only to tell"
        )
    return problems


def check_truthful(
    announcement: Announcement, legal_basis: LegalBasis, *, offer_withdrawal: bool = False
) -> None:
    """Raise :class:`UntruthfulRoute` naming every reason, if there is one."""
    problems = untruthful(announcement, legal_basis, offer_withdrawal=offer_withdrawal)
    if problems:
        raise UntruthfulRoute("route would mislead the caller: " + "; ".join(problems))


def asks(announcement: Announcement, legal_basis: LegalBasis) -> bool:
    """Does the caller get a question (and a key that changes something)?"""
    return announcement in _ASKING and legal_basis is not LegalBasis.LEGAL_OBLIGATION


def spoken_number(n: int) -> tuple[str, ...]:
    """The number prompts that say ``n`` (0 to 999,999): "two" "hundred" "sixty" "five".

    "one hundred" and "one thousand" have prompts of their own (Turkish says "yüz" and
    "bin", not "bir yüz"); other multiples are the count and then the word.
    """
    if not 0 <= n <= MAX_SPOKEN:
        raise ValueError(f"cannot speak {n}: 0 to {MAX_SPOKEN}")
    if n < 20:
        return (f"number-{n}",)
    if n < 100:
        rest = n % 10
        return (f"number-{n - rest}", *(spoken_number(rest) if rest else ()))
    if n < 1000:
        count, rest = divmod(n, 100)
        head: tuple[str, ...] = (
            ("number-100",) if count == 1 else (*spoken_number(count), NUMBER_HUNDRED)
        )
        return (*head, *(spoken_number(rest) if rest else ()))
    count, rest = divmod(n, 1000)
    head = ("number-1000",) if count == 1 else (*spoken_number(count), NUMBER_THOUSAND)
    return (*head, *(spoken_number(rest) if rest else ()))


def retention_segments(days: int) -> tuple[str, ...]:
    """How long the recording is kept, in days spoken (0 days: not kept after the call)."""
    if days == 0:
        return (RETENTION_NONE,)
    after = RETENTION_AFTER_ONE if days == 1 else RETENTION_AFTER
    return (RETENTION_BEFORE, *spoken_number(days), after)


def reference_segments(reference: str | None) -> tuple[str, ...]:
    """The call's reference, digit by digit (nothing for a call without one)."""
    if not reference:
        return ()
    if not reference.isdigit():
        raise ValueError(f"reference {reference!r}: digits only")
    return (REFERENCE_INTRO, *(f"number-{digit}" for digit in reference))


def full_notice(facts: DisclosureFacts) -> tuple[str, ...]:
    """The whole notice without a question: who, what, why, on what basis, to whom, how
    long, the rights, and the reference."""
    return (
        INTRO,
        BASIS[facts.legal_basis],
        RECIPIENTS,
        *retention_segments(facts.retention_days),
        RIGHTS,
        *reference_segments(facts.reference),
    )


def disclosure(facts: DisclosureFacts) -> tuple[str, ...]:
    """The disclosure of an asking route: the full notice, then the keys that mean
    something under its basis (consent: 1 / 2 / 9; legitimate interest and contract:
    2 objects / 9; a legal obligation: no keys at all)."""
    if facts.legal_basis is LegalBasis.CONSENT:
        choices: tuple[str, ...] = (CHOICES_CONSENT,)
    elif facts.legal_basis in _OBJECTION_BASES:
        choices = (CHOICES_OBJECTION,)
    else:
        choices = ()
    return (*full_notice(facts), *choices)


def short_notice(facts: DisclosureFacts) -> tuple[str, ...]:
    """A notice-only route: that (and why) the call is recorded, for how long, its
    reference, and key 0 for the full notice."""
    return (
        NOTICE[facts.legal_basis],
        *retention_segments(facts.retention_days),
        *reference_segments(facts.reference),
        FULL_NOTICE_OFFER,
    )
