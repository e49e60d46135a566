"""Who may do what: one pure function, :func:`allowed`, used by every door (web, API).

Least privilege, as issue 10 draws the roles:

- ``admin`` runs the system (routes, extensions, retention classes, users and tokens,
  storage status) and sees no personal data: no calls, no recordings, no numbers.
- ``supervisor`` sees the calls and recordings of the extensions assigned to them, and
  may listen and share; numbers stay masked unless the user was granted ``unmask``.
- ``dpo`` answers to the law for personal data: every subject, the request register and
  its actions, legal holds, exports, unmasked numbers.
- ``auditor`` reads the audit trail and checks its chain, nothing personal.

A token's scopes narrow its user's role and can never widen it: an action must be both
in the role and in a scope. A decision carries its reason, so a refusal can be shown and
audited as it is, and, where the answer depends on the call, the extensions the principal
may see, so a listing filters in its query rather than after it.

Erasure, bulk export and un-hold need a second dpo when four eyes are on
(:func:`needs_second_approval`, :func:`approval`). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pbx_bridge.config import Role


class Action(StrEnum):
    """Everything a principal can be allowed to do, as ``<thing>.<verb>``."""

    DASHBOARD_READ = "dashboard.read"
    ROUTES_READ = "routes.read"
    ROUTES_WRITE = "routes.write"
    EXTENSIONS_READ = "extensions.read"
    EXTENSIONS_WRITE = "extensions.write"
    RETENTION_READ = "retention.read"
    RETENTION_WRITE = "retention.write"
    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    # Carrying out an admin's change that widens someone's access to personal data: the
    # dpo who approves it (personal_data_grants.py), in the console only.
    USERS_GRANT = "users.grant"
    STORAGE_STATUS = "storage.status"
    CALLS_READ = "calls.read"
    CONSENTS_READ = "consents.read"
    RECORDINGS_READ = "recordings.read"
    RECORDINGS_LISTEN = "recordings.listen"
    RECORDINGS_DOWNLOAD = "recordings.download"
    RECORDINGS_SHARE = "recordings.share"
    SHARES_READ = "shares.read"
    SHARES_REVOKE = "shares.revoke"
    RECORDINGS_HOLD = "recordings.hold"
    RECORDINGS_RELEASE = "recordings.release"
    RECORDINGS_DELETE = "recordings.delete"
    RECORDINGS_RETAIN = "recordings.retain"
    # One call's retention class (its conversation recordings), as the agent's *7 / *0.
    CALLS_RETENTION = "calls.retention"
    # PCI pause of a live call's recording by API (as the agent's *5 / *6): a supervisor
    # of the call's extension only (an agent's own token is a supervisor of their
    # extension). Pausing protects card data but also leaves a span unrecorded, so a
    # dpo, admin or auditor, who do not run calls, may not.
    CALLS_PAUSE = "calls.pause"
    # Hand a live call of the supervisor's extension to another extension (as the
    # agent's *8 / *9).
    CALLS_TRANSFER = "calls.transfer"
    NUMBERS_UNMASK = "numbers.unmask"
    DSAR_READ = "dsar.read"
    DSAR_OPEN = "dsar.open"
    DSAR_RUN = "dsar.run"
    DSAR_REJECT = "dsar.reject"
    DSAR_APPROVE = "dsar.approve"
    DSAR_DOWNLOAD = "dsar.download"
    EXPORTS_BULK = "exports.bulk"
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"


A = Action
# Actions about one call (or its recordings): a supervisor's depend on its extension.
CALL_ACTIONS = frozenset(
    {
        A.CALLS_READ,
        A.CONSENTS_READ,
        A.RECORDINGS_READ,
        A.RECORDINGS_LISTEN,
        A.RECORDINGS_SHARE,
        A.SHARES_READ,
        A.SHARES_REVOKE,
        A.NUMBERS_UNMASK,
        A.CALLS_RETENTION,
        A.CALLS_PAUSE,
        A.CALLS_TRANSFER,
    }
)
# Irreversible or wholesale: a second dpo approves them when four eyes are on. A DSAR of
# type erasure (irreversible) or export (every recording of the subject in one file: the
# bulk export) is run through DSAR_RUN; the caller asks with the request's type
# (:func:`needs_second_approval`).
FOUR_EYES_ACTIONS = frozenset({A.RECORDINGS_DELETE, A.EXPORTS_BULK, A.RECORDINGS_RELEASE})
FOUR_EYES_DSAR_TYPES = frozenset({"erasure", "export"})

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(
        {
            A.DASHBOARD_READ,
            A.ROUTES_READ,
            A.ROUTES_WRITE,
            A.EXTENSIONS_READ,
            A.EXTENSIONS_WRITE,
            A.RETENTION_READ,
            A.RETENTION_WRITE,
            A.USERS_READ,
            A.USERS_WRITE,
            A.STORAGE_STATUS,
        }
    ),
    # Everything about their own extensions' calls (unmasking only with the user's grant).
    Role.SUPERVISOR: CALL_ACTIONS | {A.DASHBOARD_READ},
    Role.DPO: frozenset(
        {
            A.DASHBOARD_READ,
            A.CALLS_READ,
            A.CONSENTS_READ,
            A.RECORDINGS_READ,
            A.RECORDINGS_LISTEN,
            A.RECORDINGS_DOWNLOAD,
            A.RECORDINGS_SHARE,
            A.SHARES_READ,
            A.SHARES_REVOKE,
            A.RECORDINGS_HOLD,
            A.RECORDINGS_RELEASE,
            A.RECORDINGS_DELETE,
            A.RECORDINGS_RETAIN,
            A.CALLS_RETENTION,
            A.NUMBERS_UNMASK,
            A.DSAR_READ,
            A.DSAR_OPEN,
            A.DSAR_RUN,
            A.DSAR_REJECT,
            A.DSAR_APPROVE,
            A.USERS_GRANT,
            A.DSAR_DOWNLOAD,
            A.EXPORTS_BULK,
            A.AUDIT_READ,
            A.AUDIT_VERIFY,
        }
    ),
    Role.AUDITOR: frozenset({A.AUDIT_READ, A.AUDIT_VERIFY}),
}


class InvalidScope(ValueError):
    """A token scope that names no action, or one the user's role does not have."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user, or a user acting through one of their tokens."""

    user_id: str
    name: str
    role: Role
    # The extensions a supervisor sees (empty for other roles).
    extensions: frozenset[str] = frozenset()
    # A supervisor's grant to see numbers in the clear.
    unmask: bool = False
    language: str | None = None  # None: the browser's
    # None for a console session (the whole role); a token's scopes otherwise.
    scopes: frozenset[str] | None = None
    token_id: str | None = None
    session_id: str | None = field(default=None, repr=False)

    @property
    def actor(self) -> str:
        """The audit trail's actor: the user, or the token and whose it is."""
        if self.token_id is not None:
            return f"token:{self.token_id}({self.name})"
        return f"user:{self.name}"


@dataclass(frozen=True)
class Resource:
    """What the action is about. ``extension``: the call's extension (None: not one call).

    ``owner_user_id``: who made it (a share link), so a supervisor revokes only their own.
    """

    extension: str | None = None
    owner_user_id: str | None = None


ANY = Resource()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    # When allowed: the extensions whose calls the principal may see (None: every call).
    extensions: frozenset[str] | None = None
    # When allowed: the action waits for a second dpo's approval (four eyes).
    needs_approval: bool = False

    def __bool__(self) -> bool:
        return self.allowed


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def scope_covers(scope: str, action: Action) -> bool:
    """``calls.read`` covers itself; ``calls.*`` every ``calls.`` action; ``*`` everything."""
    if scope == "*":
        return True
    if scope.endswith(".*"):
        return action.value.startswith(scope[:-1])
    return scope == action.value


def check_scopes(role: Role, scopes: list[str]) -> frozenset[str]:
    """The scopes a new token of this role may carry; InvalidScope names the first bad one."""
    if not scopes:
        raise InvalidScope("a token needs at least one --scope (an action such as calls.read)")
    granted = ROLE_ACTIONS[role]
    for scope in scopes:
        covered = [action for action in Action if scope_covers(scope, action)]
        if not covered:
            known = ", ".join(a.value for a in Action)
            raise InvalidScope(f"unknown scope {scope!r}: use an action ({known}), group.* or *")
        if scope != "*" and not any(action in granted for action in covered):
            raise InvalidScope(f"scope {scope!r} is outside role {role.value}'s permissions")
    return frozenset(scopes)


def allowed(
    principal: Principal,
    action: Action,
    resource: Resource = ANY,
    *,
    four_eyes: bool = False,
) -> Decision:
    """May ``principal`` do ``action`` on ``resource``? Always a reason, allowed or not.

    ``four_eyes``: ``[web] four_eyes``; when on, an allowed action of
    :data:`FOUR_EYES_ACTIONS` comes back with ``needs_approval``.
    """
    role = principal.role
    if action not in ROLE_ACTIONS[role]:
        return _deny(f"role {role.value} may not {action.value}")
    if principal.scopes is not None and not any(
        scope_covers(scope, action) for scope in principal.scopes
    ):
        return _deny(f"token scopes do not include {action.value}")
    if action is A.NUMBERS_UNMASK and role is Role.SUPERVISOR and not principal.unmask:
        return _deny("numbers stay masked: user has no unmask grant")
    extensions: frozenset[str] | None = None
    if role is Role.SUPERVISOR and action in CALL_ACTIONS:
        extensions = principal.extensions
        if resource.extension is not None and resource.extension not in extensions:
            return _deny(f"extension {resource.extension} is not assigned to {principal.name}")
        if (
            action is A.SHARES_REVOKE
            and resource.owner_user_id is not None
            and resource.owner_user_id != principal.user_id
        ):
            return _deny("a supervisor revokes only their own share links")
    if four_eyes and action in FOUR_EYES_ACTIONS:
        return Decision(
            True, f"{action.value} needs a second dpo's approval", extensions, needs_approval=True
        )
    return Decision(True, f"role {role.value} may {action.value}", extensions)


def needs_second_approval(action: Action, *, four_eyes: bool, dsar_type: str | None = None) -> bool:
    """Whether this action waits for a second dpo: erasure (a recording's deletion, or a
    DSAR of type erasure being run), bulk export (a DSAR of type export being run) and
    un-hold, only when four eyes are on."""
    if not four_eyes:
        return False
    if action is A.DSAR_RUN:
        return dsar_type in FOUR_EYES_DSAR_TYPES
    return action in FOUR_EYES_ACTIONS


def approval(requester_user_id: str, approver: Principal, action: Action) -> Decision:
    """May ``approver`` approve ``action`` asked for by ``requester_user_id``?

    A second dpo, in person: not the one who asked (nor one of their tokens), and not
    through an API token at all, so two tokens of one person cannot make four eyes.
    """
    if approver.role is not Role.DPO:
        return _deny(f"only a dpo approves {action.value}; {approver.name} is {approver.role}")
    if approver.user_id == requester_user_id:
        return _deny("four eyes: the approval must come from a second dpo, not the requester")
    if approver.token_id is not None:
        return _deny("four eyes: approvals are given in the console, not with an API token")
    return Decision(True, f"{approver.name} approves {action.value} as the second dpo")


def may_see_unmasked(principal: Principal) -> bool:
    """Numbers in the clear for this principal? (dpo, or a supervisor granted unmask.)"""
    return allowed(principal, A.NUMBERS_UNMASK).allowed
