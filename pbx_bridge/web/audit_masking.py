"""What an audit entry shows to someone who may not see personal data (an auditor).

The trail already keeps numbers masked (``0532***4567``) and subjects as keys, but a
masked number still narrows a person down, an address is personal data, and a few
details are free text an operator typed (a legal hold's reason, a deletion's reason, a
download's file name) that may name a caller. An auditor checks who did what and that
the chain holds; none of that needs those. So, for whoever may not unmask:

- targets stay as stored: they name ids, keys, routes (the operator's own DIDs) and
  extensions, never a caller;

- a detail named like a number (``number``, ``caller``, ``callee``, ``*_number``) and
  any number-like run in any text (10+ digits, or a masked number) become ``•••``;
- free text (``note``, ``out``, a ``reason`` that is not a short code such as
  ``wrong-password``) becomes ``•••``;
- an IP address (the ``ip`` detail, an ``ip:`` actor) keeps its network only
  (``203.0.x.x``; IPv6 its first two groups): enough to tell inside from outside.

Staff accounts (``user:ayse``, a token's user) stay: they are what an audit is about.
Ids, hashes, times, counts and codes stay. One pure function, :func:`masked_entry`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

HIDDEN = "•••"
_NUMBER_KEYS = frozenset({"number", "caller", "callee", "called", "msisdn", "phone"})
_FREE_TEXT_KEYS = frozenset({"note", "out", "text", "comment", "name", "caller_name"})
# The operator's own numbers (a route's DID), not a person's.
_KEPT_KEYS = frozenset({"did"})
_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,48}$")
# A phone number in text: 10 or more digits (with spaces or dashes between), or a
# masked one; ids and hashes are left alone (a run inside letters or hyphens is part
# of one).
_NUMBER_IN_TEXT = re.compile(
    r"(?<![0-9A-Za-z-])\+?\d[\d ]*\*{2,}[\d ]*\d(?![0-9A-Za-z-])"
    r"|(?<![0-9A-Za-z-])\+?\d(?:[ ]?\d){9,}(?![0-9A-Za-z-])"
)


@dataclass(frozen=True)
class EntryView:
    """One audit entry as the console and the API show it."""

    seq: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, object]
    prev_hash: str
    hash: str


def masked_ip(value: str) -> str:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return HIDDEN
    if address.version == 4:
        first, second, *_ = str(address).split(".")
        return f"{first}.{second}.x.x"
    groups = address.exploded.split(":")
    return f"{groups[0]}:{groups[1]}:x:x:x:x:x:x"


def _masked_text(value: str) -> str:
    return _NUMBER_IN_TEXT.sub(HIDDEN, value)


def _masked_value(key: str, value: object) -> object:
    lowered = key.lower()
    if isinstance(value, Mapping):
        # A change's "from" and "to" are the field's values: masked as the field.
        return {
            str(k): _masked_value(key if str(k) in ("from", "to") else str(k), v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked_value(key, item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if lowered in _KEPT_KEYS:
        return text
    if lowered in _NUMBER_KEYS or lowered.endswith("_number"):
        return HIDDEN
    if lowered == "ip":
        return masked_ip(text)
    if lowered in _FREE_TEXT_KEYS or (lowered == "reason" and not _CODE.fullmatch(text)):
        return HIDDEN
    return _masked_text(text)


def masked_details(details: Mapping[str, object]) -> dict[str, object]:
    """The details with every number, address and free text hidden (see the module)."""
    return {str(key): _masked_value(str(key), value) for key, value in details.items()}


def masked_actor(actor: str) -> str:
    """``ip:203.0.113.9`` (a failed sign-in under no known name) keeps its network."""
    if actor.startswith("ip:"):
        return "ip:" + masked_ip(actor[3:])
    return _masked_text(actor)


def masked_entry(entry: EntryView) -> EntryView:
    """The entry for someone who may not see personal data. Its hashes stay those of
    the stored entry (the chain is checked on what is stored, never on this view)."""
    return replace(
        entry,
        actor=masked_actor(entry.actor),
        details=masked_details(entry.details),
    )
