"""Which Asterisk recordings make up one recording row.

A ``mixed`` row is one Asterisk recording named after the row (the bridge, or a snoop). A
``stereo`` row is two, one per call leg, recorded separately and merged into one file
(caller left, agent right); their names are the row's name plus the leg, so a leg found
in Asterisk always leads back to its row, and the row alone says what to fetch and what
to delete.
"""

from __future__ import annotations

from enum import StrEnum

from storage.models import Recording

# Every Asterisk object this service names starts so (pbx_bridge/flow/names.py builds and
# reads the others'); a recording is the prefix and its row's id.
ASTERISK_NAME_PREFIX = "pbxb-"


def recording_name(recording_id: str) -> str:
    """The Asterisk name of a row's recording (of a stereo row: the legs' common stem)."""
    if not recording_id:
        raise ValueError("a recording name needs the row's id")
    return f"{ASTERISK_NAME_PREFIX}{recording_id}"


class Layout(StrEnum):
    MIXED = "mixed"
    STEREO = "stereo"


class Leg(StrEnum):
    CALLER = "caller"
    AGENT = "agent"


# Channel order of the merged file: the caller left, the agent right.
STEREO_LEGS: tuple[Leg, ...] = (Leg.CALLER, Leg.AGENT)


def leg_name(asterisk_name: str, leg: Leg) -> str:
    """The Asterisk name of one leg of a stereo recording."""
    return f"{asterisk_name}-{leg.value}"


def source_names(asterisk_name: str, layout: str) -> tuple[str, ...]:
    """Every Asterisk recording behind a row, in channel order (one for mixed)."""
    if Layout(layout) is Layout.STEREO:
        return tuple(leg_name(asterisk_name, leg) for leg in STEREO_LEGS)
    return (asterisk_name,)


def leg_names(row: Recording) -> tuple[str, ...]:
    """What to fetch and what to delete in Asterisk for this row."""
    return source_names(row.asterisk_name, row.layout)


def base_name(name: str) -> str:
    """The row's ``asterisk_name`` a leg name was derived from; other names unchanged.

    Only a candidate: a name that merely ends like a leg (another application's
    ``x-caller``) belongs to a row only if that row is stereo (see ``belongs_to``).
    """
    for leg in STEREO_LEGS:
        suffix = f"-{leg.value}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def candidate_names(name: str) -> tuple[str, ...]:
    """The ``asterisk_name`` values a row owning ``name`` could have."""
    base = base_name(name)
    return (name,) if base == name else (name, base)


def belongs_to(name: str, asterisk_name: str, layout: str) -> bool:
    """Whether Asterisk's recording ``name`` is one of the row's recordings."""
    return name in source_names(asterisk_name, layout)


__all__ = [
    "ASTERISK_NAME_PREFIX",
    "STEREO_LEGS",
    "Layout",
    "Leg",
    "base_name",
    "belongs_to",
    "candidate_names",
    "leg_name",
    "leg_names",
    "recording_name",
    "source_names",
]
