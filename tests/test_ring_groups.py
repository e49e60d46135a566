"""Ring groups as an admin sets them (``pbx-bridge group``, ``route set --target
group:NAME``) and the pure choices the dialer follows (flow/ring_group.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_support import clean_pbx_env, cli, migrated_config

from pbx_bridge.calls.ring_groups import InvalidRingGroup, Member, parse_members
from pbx_bridge.config import RingStrategy
from pbx_bridge.flow.dial_result import DialResult
from pbx_bridge.flow.ring_group import Ringing, group_result, ring_waves, single, told_days

__all__ = ["clean_pbx_env"]

A, B, C = Member("100", 15), Member("101", 20), Member("102", 25)
R = DialResult


# -- the choices ---------------------------------------------------------------------------


def test_ringall_rings_every_member_in_one_wave_order_one_per_wave() -> None:
    assert ring_waves(Ringing(RingStrategy.ALL, (A, B, C))) == [(A, B, C)]
    assert ring_waves(Ringing(RingStrategy.ORDER, (A, B, C))) == [(A,), (B,), (C,)]
    assert ring_waves(single("100")) == [(Member("100", 0),)]


@pytest.mark.parametrize(("results", "whole"), [
    ([R.BUSY, R.ANSWERED], R.ANSWERED),
    ([R.NO_ANSWER, R.BUSY, R.UNREACHABLE], R.NO_ANSWER),  # someone rang: nobody took it
    ([R.BUSY, R.BUSY], R.BUSY),
    ([R.BUSY, R.UNREACHABLE], R.BUSY),
    ([R.UNREACHABLE, R.UNREACHABLE], R.UNREACHABLE),
    ([], R.UNREACHABLE),
])
def test_one_result_for_the_whole_group(results: list[DialResult], whole: DialResult) -> None:
    assert group_result(results) is whole


def test_the_notice_tells_the_longest_period_any_member_keeps() -> None:
    group = Ringing(RingStrategy.ALL, (A, B), group="sales",
                    classes=(("100", "default", 60), ("101", "sales", 730)))
    assert told_days(60, group) == 730
    assert group.class_of("101") == ("sales", 730) and group.class_of("100") == ("default", 60)
    assert told_days(90, single("100")) == 90
    assert told_days(90, None) == 90


@pytest.mark.parametrize(("spec", "message"), [
    ("", "--members is empty"),
    (" , ", "--members is empty"),
    ("100,,101", "has an empty entry"),
    ("10 0:15", "member invalid extension '10 0'"),
    ("100:abc", "'abc' is not a number of seconds"),
    ("100:2", "rings 2s; each member rings between 5 and 300 seconds"),
    ("100:301", "rings 301s"),
    ("100:15,100:20", "extension 100 is a member twice"),
])
def test_bad_members_are_refused_naming_why(spec: str, message: str) -> None:
    with pytest.raises(InvalidRingGroup, match="ring group sales") as raised:
        parse_members("sales", spec, default_ring_s=30)
    assert message in str(raised.value)


def test_members_without_seconds_ring_the_configured_time() -> None:
    assert parse_members("sales", "100, 101:20", default_ring_s=30) == (
        Member("100", 30), Member("101", 20))


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    return migrated_config(tmp_path)


def audit_actions(config: Path) -> list[tuple[str, str]]:
    db = config.parent / "var" / "pbx-bridge.db"
    with sqlite3.connect(db) as conn:
        return [(a, t) for a, t in conn.execute(
            "SELECT action, target FROM audit_log WHERE target LIKE 'ring_group:%' ORDER BY seq")]


def test_a_group_is_set_rung_by_a_route_listed_and_not_deleted_while_rung(
    migrated: Path,
) -> None:
    made = cli(migrated, "group", "set", "sales", "--members", "100:15,101:20",
               "--strategy", "order")
    assert made.exit_code == 0, made.output
    assert "routes ring it with --target group:sales" in made.stdout
    routed = cli(migrated, "route", "set", "2125550100", "--target", "group:sales")
    assert routed.exit_code == 0, routed.output
    assert "group:sales rings order: 100:15, 101:20" in routed.stdout

    listed = cli(migrated, "group", "list").stdout.splitlines()
    assert listed[1].split() == ["sales", "order", "100:15,", "101:20", "route(s)", "2125550100"]
    routes = cli(migrated, "route", "list").stdout
    assert "group:sales rings order: 100:15, 101:20" in routes

    refused = cli(migrated, "group", "delete", "sales")
    assert refused.exit_code == 2
    assert "ring group 'sales' is rung by route(s) 2125550100 and cannot be removed" in (
        refused.stderr)
    # A change keeps what it does not name.
    assert cli(migrated, "group", "set", "sales", "--strategy", "all").exit_code == 0
    assert cli(migrated, "group", "list").stdout.splitlines()[1].split()[:2] == ["sales", "all"]

    assert cli(migrated, "route", "set", "2125550100", "--target", "100").exit_code == 0
    gone = cli(migrated, "group", "delete", "sales")
    assert gone.exit_code == 0, gone.output
    assert len(cli(migrated, "group", "list").stdout.splitlines()) == 1  # the header only
    assert audit_actions(migrated) == [
        ("ring_group.created", "ring_group:sales"), ("ring_group.changed", "ring_group:sales"),
        ("ring_group.deleted", "ring_group:sales")]


def test_bad_groups_and_targets_are_refused_and_nothing_is_stored(migrated: Path) -> None:
    new_without_members = cli(migrated, "group", "set", "sales")
    assert new_without_members.exit_code == 2
    assert "ring group sales is new: give its --members" in new_without_members.stderr
    bad_name = cli(migrated, "group", "set", "Sales!", "--members", "100")
    assert bad_name.exit_code == 2 and "invalid ring group name 'Sales!'" in bad_name.stderr
    empty = cli(migrated, "group", "set", "sales", "--members", "")
    assert empty.exit_code == 2 and "--members is empty" in empty.stderr
    unknown = cli(migrated, "route", "set", "2125550100", "--target", "group:nobody")
    assert unknown.exit_code == 2
    assert "no ring group 'nobody': create it with `pbx-bridge group set nobody" in (
        unknown.stderr)
    assert cli(migrated, "group", "delete", "nobody").exit_code == 2
    assert len(cli(migrated, "route", "list").stdout.splitlines()) == 2  # default only
    assert "Traceback" not in unknown.output + empty.output


def test_a_group_routes_recording_mode_is_each_members_own(migrated: Path) -> None:
    assert cli(migrated, "group", "set", "sales", "--members", "100,101").exit_code == 0
    assert cli(migrated, "route", "set", "2125550100", "--target", "group:sales").exit_code == 0
    listed = cli(migrated, "group", "list").stdout.splitlines()[1]
    assert "100:30, 101:30" in listed  # [call] ring_timeout_s, as stored


def test_the_default_route_may_name_a_group_which_then_cannot_be_deleted(
    tmp_path: Path,
) -> None:
    config = migrated_config(tmp_path, '[default_route]\ntarget = "group:sales"\n')
    assert cli(config, "group", "set", "sales", "--members", "100:15").exit_code == 0
    refused = cli(config, "group", "delete", "sales")
    assert refused.exit_code == 2
    assert "the configured default route ([default_route] target)" in refused.stderr

