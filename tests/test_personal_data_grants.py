"""The rule of who may give access to personal data from the console (a pure function):
every change that widens a supervisor's or dpo's access waits for a dpo, making a dpo and
a dpo's credentials are root's, and whatever narrows access is the admin's alone."""

from __future__ import annotations

import pytest

from pbx_bridge.config import Language, Role
from pbx_bridge.users.personal_data_grants import (
    ChangeKind,
    Current,
    UserChange,
    Who,
    judge,
    new_password_on_approval,
    token_verdict,
)

SUPERVISOR = Current(Role.SUPERVISOR, ("101",))
DPO = Current(Role.DPO)
AUDITOR = Current(Role.AUDITOR)
ADMIN = Current(Role.ADMIN)


def _set(**fields: object) -> UserChange:
    return UserChange(ChangeKind.SET, "selim", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("current", "change", "who"), [
    (None, UserChange(ChangeKind.ADD, "kerem", role=Role.SUPERVISOR, extensions=("101",)),
     Who.DPO_APPROVES),
    (None, UserChange(ChangeKind.ADD, "kerem", role=Role.DPO), Who.ROOT_ONLY),
    (None, UserChange(ChangeKind.ADD, "kerem", role=Role.AUDITOR), Who.ADMIN),
    (None, UserChange(ChangeKind.ADD, "kerem", role=Role.ADMIN), Who.ADMIN),
    (AUDITOR, _set(role=Role.SUPERVISOR, extensions=("101",)), Who.DPO_APPROVES),
    (ADMIN, _set(role=Role.SUPERVISOR, extensions=("101",)), Who.DPO_APPROVES),
    (ADMIN, _set(role=Role.DPO), Who.ROOT_ONLY),
    (SUPERVISOR, _set(role=Role.DPO), Who.ROOT_ONLY),
    (SUPERVISOR, _set(extensions=("100", "101")), Who.DPO_APPROVES),
    (SUPERVISOR, _set(extensions=("100",)), Who.DPO_APPROVES),  # another extension's calls
    (SUPERVISOR, _set(extensions=("101",)), Who.ADMIN),
    (Current(Role.SUPERVISOR, ("100", "101")), _set(extensions=("101",)), Who.ADMIN),
    (SUPERVISOR, _set(unmask=True), Who.DPO_APPROVES),
    (Current(Role.SUPERVISOR, ("101",), unmask=True), _set(unmask=False), Who.ADMIN),
    (SUPERVISOR, _set(role=Role.AUDITOR), Who.ADMIN),
    (DPO, _set(role=Role.ADMIN), Who.ADMIN),
    (DPO, _set(role=Role.SUPERVISOR, extensions=("101",)), Who.ADMIN),
    (SUPERVISOR, _set(require_totp=False, language=Language.TR), Who.ADMIN),
    (Current(Role.SUPERVISOR, ("101",), disabled=True), UserChange(ChangeKind.ENABLE, "selim"),
     Who.DPO_APPROVES),
    (Current(Role.DPO, disabled=True), UserChange(ChangeKind.ENABLE, "deniz"),
     Who.DPO_APPROVES),
    (Current(Role.AUDITOR, disabled=True), UserChange(ChangeKind.ENABLE, "aydin"), Who.ADMIN),
    (SUPERVISOR, UserChange(ChangeKind.RESET_PASSWORD, "selim"), Who.DPO_APPROVES),
    (DPO, UserChange(ChangeKind.RESET_PASSWORD, "deniz"), Who.ROOT_ONLY),
    (AUDITOR, UserChange(ChangeKind.RESET_PASSWORD, "aydin"), Who.ADMIN),
])
def test_who_carries_a_change_out(current: Current | None, change: UserChange,
                                  who: Who) -> None:
    assert judge(current, change).who is who


def test_a_refusal_names_the_cli_command() -> None:
    verdict = judge(DPO, UserChange(ChangeKind.RESET_PASSWORD, "deniz"))
    assert "pbx-bridge users reset-password deniz" in verdict.reason
    made = judge(None, UserChange(ChangeKind.ADD, "dora", role=Role.DPO))
    assert "pbx-bridge users add dora --role dpo" in made.reason


def test_own_password_and_tokens_are_the_users_own() -> None:
    assert judge(SUPERVISOR, UserChange(ChangeKind.RESET_PASSWORD, "selim"),
                 by_self=True).who is Who.ADMIN
    # ... but an admin promoting themself still needs a second person.
    assert judge(ADMIN, _set(role=Role.SUPERVISOR, extensions=("101",)),
                 by_self=True).who is Who.DPO_APPROVES
    assert token_verdict(Role.SUPERVISOR, "selim").who is Who.ROOT_ONLY
    assert token_verdict(Role.DPO, "deniz").who is Who.ROOT_ONLY
    assert "pbx-bridge tokens create --user deniz" in token_verdict(Role.DPO, "deniz").reason
    assert token_verdict(Role.SUPERVISOR, "selim", by_self=True).who is Who.ADMIN
    assert token_verdict(Role.AUDITOR, "aydin").who is Who.ADMIN


def test_who_gets_a_new_password_on_approval() -> None:
    """An auditor or admin promoted: their old password may be known to an admin."""
    assert new_password_on_approval(AUDITOR, _set(role=Role.SUPERVISOR))
    assert not new_password_on_approval(SUPERVISOR, _set(extensions=("100", "101")))
    assert new_password_on_approval(None, UserChange(ChangeKind.ADD, "k", role=Role.SUPERVISOR))
    assert new_password_on_approval(SUPERVISOR, UserChange(ChangeKind.RESET_PASSWORD, "selim"))
    assert not new_password_on_approval(Current(Role.SUPERVISOR, disabled=True),
                                        UserChange(ChangeKind.ENABLE, "selim"))


def test_a_change_survives_its_round_trip_through_the_approval() -> None:
    change = UserChange(ChangeKind.ADD, "kerem", role=Role.SUPERVISOR, extensions=("100", "101"),
                        unmask=True, language=Language.TR, require_totp=True)
    assert UserChange.from_json(change.to_json()) == change
    assert change.describe(None) == (
        "add user kerem as supervisor, extensions 100,101, unmasked numbers")
    assert _set(role=Role.SUPERVISOR, extensions=("101",)).describe(AUDITOR) == (
        "change user selim: role auditor → supervisor; extensions 101")
