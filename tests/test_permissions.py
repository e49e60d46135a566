"""Who may do what (pbx_bridge/users/permissions.py): pure rules, no I/O."""

from __future__ import annotations

import pytest

from pbx_bridge.config import Role
from pbx_bridge.users.permissions import (
    ROLE_ACTIONS,
    Action,
    InvalidScope,
    Principal,
    Resource,
    allowed,
    approval,
    check_scopes,
    may_see_unmasked,
    needs_second_approval,
)

A = Action


def who(role: Role, **kwargs: object) -> Principal:
    name = kwargs.pop("name", role.value)
    return Principal(user_id=f"id-{name}", name=str(name), role=role, **kwargs)  # type: ignore[arg-type]


ADMIN = who(Role.ADMIN)
DPO = who(Role.DPO)
AUDITOR = who(Role.AUDITOR)
SUPERVISOR = who(Role.SUPERVISOR, extensions=frozenset({"100", "101"}))
PERSONAL = {
    A.CALLS_READ,
    A.CONSENTS_READ,
    A.RECORDINGS_READ,
    A.RECORDINGS_LISTEN,
    A.RECORDINGS_DOWNLOAD,
    A.NUMBERS_UNMASK,
    A.DSAR_READ,
    A.EXPORTS_BULK,
}


def test_admin_runs_the_system_and_never_touches_a_recording() -> None:
    for action in (A.ROUTES_WRITE, A.EXTENSIONS_WRITE, A.RETENTION_WRITE, A.USERS_WRITE,
                   A.STORAGE_STATUS):
        assert allowed(ADMIN, action).allowed
    for action in PERSONAL | {A.RECORDINGS_SHARE, A.AUDIT_READ}:
        decision = allowed(ADMIN, action)
        assert not decision.allowed
        assert decision.reason == f"role admin may not {action.value}"


def test_auditor_reads_the_trail_and_nothing_personal() -> None:
    assert allowed(AUDITOR, A.AUDIT_READ).allowed
    assert allowed(AUDITOR, A.AUDIT_VERIFY).allowed
    assert ROLE_ACTIONS[Role.AUDITOR] == {A.AUDIT_READ, A.AUDIT_VERIFY}
    for action in PERSONAL | {A.ROUTES_WRITE, A.USERS_WRITE, A.RECORDINGS_HOLD}:
        assert not allowed(AUDITOR, action).allowed


def test_dpo_handles_every_subject_with_numbers_in_the_clear() -> None:
    for action in PERSONAL | {A.DSAR_RUN, A.RECORDINGS_HOLD, A.RECORDINGS_RELEASE,
                              A.RECORDINGS_DELETE, A.AUDIT_READ}:
        decision = allowed(DPO, action, Resource(extension="555"))
        assert decision.allowed and decision.extensions is None
    assert may_see_unmasked(DPO)
    assert not allowed(DPO, A.USERS_WRITE).allowed


def test_supervisor_sees_only_their_extensions() -> None:
    listing = allowed(SUPERVISOR, A.CALLS_READ)
    assert listing.allowed and listing.extensions == {"100", "101"}
    assert allowed(SUPERVISOR, A.RECORDINGS_LISTEN, Resource(extension="101")).allowed
    assert allowed(SUPERVISOR, A.RECORDINGS_SHARE, Resource(extension="100")).allowed
    other = allowed(SUPERVISOR, A.RECORDINGS_LISTEN, Resource(extension="102"))
    assert not other.allowed
    assert other.reason == "extension 102 is not assigned to supervisor"
    for action in (A.RECORDINGS_DOWNLOAD, A.DSAR_READ, A.AUDIT_READ, A.RECORDINGS_DELETE):
        assert not allowed(SUPERVISOR, action, Resource(extension="100")).allowed


def test_supervisor_numbers_stay_masked_unless_granted() -> None:
    assert not may_see_unmasked(SUPERVISOR)
    assert allowed(SUPERVISOR, A.NUMBERS_UNMASK).reason == (
        "numbers stay masked: user has no unmask grant"
    )
    granted = who(Role.SUPERVISOR, extensions=frozenset({"100"}), unmask=True)
    assert may_see_unmasked(granted)
    assert not allowed(granted, A.NUMBERS_UNMASK, Resource(extension="200")).allowed
    assert not may_see_unmasked(ADMIN) and not may_see_unmasked(AUDITOR)


def test_supervisor_revokes_only_their_own_share_links() -> None:
    own = Resource(extension="100", owner_user_id=SUPERVISOR.user_id)
    theirs = Resource(extension="100", owner_user_id="id-someone-else")
    assert allowed(SUPERVISOR, A.SHARES_REVOKE, own).allowed
    assert not allowed(SUPERVISOR, A.SHARES_REVOKE, theirs).allowed
    assert allowed(DPO, A.SHARES_REVOKE, theirs).allowed


def test_token_scopes_narrow_a_role_and_never_widen_it() -> None:
    scoped = who(Role.SUPERVISOR, extensions=frozenset({"100"}), scopes=frozenset({"calls.*"}))
    assert allowed(scoped, A.CALLS_READ).allowed
    refused = allowed(scoped, A.RECORDINGS_LISTEN, Resource(extension="100"))
    assert not refused.allowed and refused.reason == "token scopes do not include recordings.listen"
    everything = who(Role.ADMIN, scopes=frozenset({"*"}))
    assert allowed(everything, A.ROUTES_WRITE).allowed
    assert not allowed(everything, A.RECORDINGS_LISTEN).allowed


def test_the_audit_actor_is_the_user_or_the_token() -> None:
    token = who(Role.DPO, name="ayse", token_id="t-1", scopes=frozenset({"dsar.read"}))
    assert token.actor == "token:t-1(ayse)"
    assert who(Role.DPO, name="ayse").actor == "user:ayse"


def test_scopes_are_checked_when_a_token_is_made() -> None:
    assert check_scopes(Role.DPO, ["dsar.*", "calls.read"]) == {"dsar.*", "calls.read"}
    assert check_scopes(Role.ADMIN, ["*"]) == {"*"}
    with pytest.raises(InvalidScope, match="outside role admin"):
        check_scopes(Role.ADMIN, ["recordings.listen"])
    with pytest.raises(InvalidScope, match="outside role auditor"):
        check_scopes(Role.AUDITOR, ["calls.*"])
    with pytest.raises(InvalidScope, match=r"unknown scope 'calls\.write'"):
        check_scopes(Role.DPO, ["calls.write"])
    with pytest.raises(InvalidScope, match="at least one"):
        check_scopes(Role.DPO, [])


def test_four_eyes_hold_back_erasure_bulk_export_and_unhold() -> None:
    for action in (A.RECORDINGS_DELETE, A.EXPORTS_BULK, A.RECORDINGS_RELEASE):
        assert needs_second_approval(action, four_eyes=True)
        assert not needs_second_approval(action, four_eyes=False)
        decision = allowed(DPO, action, four_eyes=True)
        assert decision.allowed and decision.needs_approval
        assert decision.reason == f"{action.value} needs a second dpo's approval"
        assert not allowed(DPO, action).needs_approval
    assert needs_second_approval(A.DSAR_RUN, four_eyes=True, dsar_type="erasure")
    assert needs_second_approval(A.DSAR_RUN, four_eyes=True, dsar_type="export")
    assert not needs_second_approval(A.DSAR_RUN, four_eyes=True, dsar_type="access")
    assert not needs_second_approval(A.RECORDINGS_HOLD, four_eyes=True)
    assert not allowed(DPO, A.RECORDINGS_HOLD, four_eyes=True).needs_approval


def test_the_second_pair_of_eyes_is_another_dpo_in_person() -> None:
    other = who(Role.DPO, name="mehmet")
    assert approval(DPO.user_id, other, A.RECORDINGS_DELETE).allowed
    assert not approval(DPO.user_id, DPO, A.RECORDINGS_DELETE).allowed
    assert "second dpo" in approval(DPO.user_id, DPO, A.RECORDINGS_DELETE).reason
    own_token = who(Role.DPO, token_id="t-9")
    assert not approval(DPO.user_id, own_token, A.EXPORTS_BULK).allowed
    other_token = who(Role.DPO, name="mehmet", token_id="t-2")
    assert not approval(DPO.user_id, other_token, A.EXPORTS_BULK).allowed
    assert not approval(DPO.user_id, ADMIN, A.RECORDINGS_RELEASE).allowed


def test_every_action_is_someones_and_a_decision_is_truthy_only_when_allowed() -> None:
    granted = set().union(*ROLE_ACTIONS.values())
    assert granted == set(Action)
    assert allowed(DPO, A.CALLS_READ)
    assert not allowed(ADMIN, A.CALLS_READ)
