"""Where calls are sent, as the database and the configuration name it: a route (or the
default route) ringing a ring group nobody created reaches no one, and agents' calls out
configured here reach nobody's notice unless Asterisk hands them over through
``[pbx-bridge-outbound]`` (that context is probed in asterisk.check_dialplan)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbx_bridge.calls.models import Extension, OutboundRoute
from pbx_bridge.calls.ring_groups import group_of_target, list_groups
from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.health_check.findings import Finding, ok, problem

CHECK = "routes.ring_groups"


# -- decisions -----------------------------------------------------------------------------

def ring_group_findings(
    routes: Iterable[ResolvedRoute], default_target: str, groups: Collection[str]
) -> list[Finding]:
    """A line for each route (and the default route) ringing a group that does not exist."""
    findings: list[Finding] = []
    rung = 0
    for route in routes:
        name = group_of_target(route.target)
        if name is None:
            continue
        rung += 1
        if name not in groups:
            findings.append(problem(
                CHECK, f"route {route.did} rings ring group {name!r}, which does not exist: "
                f"its callers reach nobody; create it (`pbx-bridge group set {name} "
                f"--members EXT,...`) or `pbx-bridge route set {route.did} --target EXT`",
                route=route.did, group=name))
    default = group_of_target(default_target)
    if default is not None:
        rung += 1
        if default not in groups:
            findings.append(problem(
                CHECK, f"[default_route] target rings ring group {default!r}, which does "
                f"not exist: callers of every DID without a route reach nobody; create it "
                f"(`pbx-bridge group set {default} --members EXT,...`) or change "
                "[default_route] target", route="default", group=default))
    if not findings:
        findings.append(ok(CHECK, f"the ring groups of {rung} route(s) all exist" if rung
                           else "no route rings a ring group"))
    return findings


def outbound_use_phrase(prefixes: Collection[str], extensions: Collection[str]) -> list[str]:
    """What configures agents' calls out, one phrase each (empty: nothing does)."""
    users = []
    if prefixes:
        users.append(f"outbound route(s) {', '.join(prefixes)}")
    if extensions:
        users.append(f"the outbound cells of extension(s) {', '.join(extensions)}")
    return users


# -- reads ---------------------------------------------------------------------------------

async def outbound_users(session: AsyncSession) -> list[str]:
    """Outbound routes and extensions with an outbound cell of their own: each says this
    PBX's agents are meant to call out through pbx-bridge."""
    prefixes = (await session.scalars(
        select(OutboundRoute.prefix).order_by(OutboundRoute.prefix))).all()
    extensions = (await session.scalars(
        select(Extension.number).where(or_(Extension.outbound_internal.is_not(None),
                                           Extension.outbound_external.is_not(None)))
        .order_by(Extension.number))).all()
    return outbound_use_phrase(prefixes, extensions)


async def check_ring_groups(
    session: AsyncSession, routes: Iterable[ResolvedRoute], default_target: str
) -> list[Finding]:
    groups = {g.name for g in await list_groups(session)}
    return ring_group_findings(routes, default_target, groups)
