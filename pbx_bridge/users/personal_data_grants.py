"""Who may give someone access to personal data from the console or the API: a pure rule.

An ``admin`` runs the system and must never listen to, download or unmask a recording
(issue 10). Handing an admin the credentials of someone who can (a supervisor's new
password, a dpo's token), or letting an admin make such a someone alone (promote a user
whose password they know, add extensions to a supervisor), would make that promise
empty. So, in the console and the API (root at the CLI stays able to do everything, and
is audited):

- Nobody but the user themself obtains a credential of a user with a personal-data role
  (supervisor, dpo): no token for them, no password reset whose new password the admin
  would see. A supervisor's reset and a new supervisor's first password are shown to the
  dpo who approves them (a dpo sees every call anyway); a dpo's, never: whoever knew a
  second dpo's password could approve their own erasures (two accounts are not four eyes).
- Whatever widens someone's access to personal data (a new supervisor, a role changed to
  supervisor, extensions added, the unmask grant, re-enabling a supervisor or dpo) waits
  for a dpo's approval, whatever ``[web] four_eyes`` says: without it, an admin could
  promote a user whose password they know and listen, and four eyes off is a choice
  about erasures, not a licence for that.
- Making a dpo (a new one, or a role changed to dpo) is root's, at the CLI.
- Whatever narrows access (disable, fewer extensions, a role without personal data,
  taking unmask away) and whatever touches no personal data is the admin's alone.

Every path is audited: the change itself (``user.*``), and the approval asked, given or
refused (``approval.*``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pbx_bridge.config import Language, Role

PERSONAL_DATA_ROLES = frozenset({Role.SUPERVISOR, Role.DPO})


class ChangeKind(StrEnum):
    ADD = "add"
    SET = "set"  # role, extensions, unmask, language, TOTP requirement
    ENABLE = "enable"
    RESET_PASSWORD = "reset-password"


class Who(StrEnum):
    """Who carries a change out."""

    ADMIN = "admin"  # the admin, at once
    DPO_APPROVES = "dpo-approves"  # waits for a dpo's approval in the console
    ROOT_ONLY = "root-only"  # refused: root at the CLI


@dataclass(frozen=True)
class Verdict:
    who: Who
    reason: str  # what the admin is told (a refusal, or what waits)


@dataclass(frozen=True)
class Current:
    """What the user is now (the rule needs no more)."""

    role: Role
    extensions: tuple[str, ...] = ()
    unmask: bool = False
    disabled: bool = False


@dataclass(frozen=True)
class UserChange:
    """A change asked in the console or the API; ``None`` keeps a field (``set``)."""

    kind: ChangeKind
    name: str
    role: Role | None = None
    extensions: tuple[str, ...] | None = None
    unmask: bool | None = None
    language: Language | None = None
    require_totp: bool | None = None

    def to_json(self) -> str:
        return json.dumps({
            "kind": self.kind.value, "name": self.name,
            "role": None if self.role is None else self.role.value,
            "extensions": None if self.extensions is None else list(self.extensions),
            "unmask": self.unmask,
            "language": None if self.language is None else self.language.value,
            "require_totp": self.require_totp,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UserChange:
        data = json.loads(text)
        extensions = data.get("extensions")
        return cls(
            kind=ChangeKind(data["kind"]), name=data["name"],
            role=None if data.get("role") is None else Role(data["role"]),
            extensions=None if extensions is None else tuple(extensions),
            unmask=data.get("unmask"),
            language=None if data.get("language") is None else Language(data["language"]),
            require_totp=data.get("require_totp"),
        )

    def describe(self, current: Current | None) -> str:
        """One line for the dpo who decides: who, and what changes."""
        if self.kind is ChangeKind.ADD:
            role = self.role.value if self.role is not None else "?"
            parts = [f"add user {self.name} as {role}"]
            if self.extensions:
                parts.append(f"extensions {','.join(self.extensions)}")
            if self.unmask:
                parts.append("unmasked numbers")
            return ", ".join(parts)
        if self.kind is ChangeKind.ENABLE:
            return f"enable user {self.name} again"
        if self.kind is ChangeKind.RESET_PASSWORD:
            return f"reset the password of {self.name} (the new one is shown to the approver)"
        parts = []
        if current is not None and self.role is not None and self.role is not current.role:
            parts.append(f"role {current.role.value} → {self.role.value}")
        if self.extensions is not None and (
            current is None or tuple(self.extensions) != current.extensions
        ):
            parts.append(f"extensions {','.join(self.extensions) or '-'}")
        if self.unmask is not None and (current is None or self.unmask != current.unmask):
            parts.append("unmasked numbers" if self.unmask else "numbers masked")
        return f"change user {self.name}: {'; '.join(parts) or 'nothing'}"


def _added(wanted: Iterable[str], had: Iterable[str]) -> list[str]:
    return sorted(set(wanted) - set(had))


def judge(current: Current | None, change: UserChange, *, by_self: bool = False) -> Verdict:
    """Who may carry ``change`` out when an admin asks it in the console or the API.

    ``current``: the user as they are (None for a new one); ``by_self``: the user asks it
    about their own account."""
    name = change.name
    if change.kind is ChangeKind.ADD:
        if change.role is Role.DPO:
            return Verdict(Who.ROOT_ONLY, f"a dpo is made by root at the server:"
                           f" `pbx-bridge users add {name} --role dpo` (audited)")
        if change.role is Role.SUPERVISOR:
            return Verdict(Who.DPO_APPROVES, f"a new supervisor ({name}) sees calls: a dpo"
                           " approves it, and is shown the first password to hand over")
        return Verdict(Who.ADMIN, f"add {name}")
    assert current is not None, "only a new user has no current settings"
    if change.kind is ChangeKind.RESET_PASSWORD:
        if by_self or current.role not in PERSONAL_DATA_ROLES:
            return Verdict(Who.ADMIN, f"reset the password of {name}")
        if current.role is Role.DPO:
            return Verdict(Who.ROOT_ONLY, f"{name} is a dpo: they change their password on"
                           " My account, or root resets it at the server:"
                           f" `pbx-bridge users reset-password {name}` (audited)")
        return Verdict(Who.DPO_APPROVES, f"{name} is a supervisor: a dpo approves the reset"
                       " and is shown the new password to hand over")
    if change.kind is ChangeKind.ENABLE:
        if current.disabled and current.role in PERSONAL_DATA_ROLES:
            return Verdict(Who.DPO_APPROVES, f"{name} is a {current.role.value}: enabling"
                           " them gives back access to personal data, a dpo approves it")
        return Verdict(Who.ADMIN, f"enable {name}")
    role = current.role if change.role is None else change.role
    if role is Role.DPO and current.role is not Role.DPO:
        return Verdict(Who.ROOT_ONLY, f"a dpo is made by root at the server:"
                       f" `pbx-bridge users set {name} --role dpo` (audited)")
    if role is Role.SUPERVISOR and current.role is not Role.DPO:  # from dpo: less
        if current.role is not Role.SUPERVISOR:
            return Verdict(Who.DPO_APPROVES, f"{name} would become a supervisor and see"
                           " calls: a dpo approves it, and is shown their new password")
        more = _added(change.extensions or (), current.extensions)
        if more:
            return Verdict(Who.DPO_APPROVES, f"extension(s) {', '.join(more)} would show"
                           f" {name} more calls: a dpo approves it")
        if change.unmask and not current.unmask:
            return Verdict(Who.DPO_APPROVES, f"{name} would see numbers unmasked: a dpo"
                           " approves it")
    return Verdict(Who.ADMIN, f"change {name}")


def token_verdict(role: Role, name: str, *, by_self: bool = False) -> Verdict:
    """Making an API token: a bearer is a credential, so never for someone else's
    personal-data account."""
    if by_self or role not in PERSONAL_DATA_ROLES:
        return Verdict(Who.ADMIN, f"make a token for {name}")
    return Verdict(Who.ROOT_ONLY, f"{name} is a {role.value}: their tokens are made by root"
                   f" at the server: `pbx-bridge tokens create --user {name} --scope ...`"
                   " (audited), so no admin ever holds a credential that can listen")


def new_password_on_approval(current: Current | None, change: UserChange) -> bool:
    """Does carrying ``change`` out give the user a new password (shown to the approver)?
    A new user, a reset, and a user who becomes a supervisor: their old password may be
    known to the admin who made them."""
    if change.kind in (ChangeKind.ADD, ChangeKind.RESET_PASSWORD):
        return True
    return (
        change.kind is ChangeKind.SET
        and current is not None
        and change.role in PERSONAL_DATA_ROLES
        and current.role not in PERSONAL_DATA_ROLES
    )
