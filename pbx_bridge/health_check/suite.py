"""All checks of `pbx-bridge check`, in two rounds: what needs only the configuration,
then what needs ARI or the database to have answered (skipped, with the reason, if not)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from pbx_bridge.calls.routes import ResolvedRoute, list_routes
from pbx_bridge.config import Settings
from pbx_bridge.flow.prompts import Manifest
from pbx_bridge.health_check import (
    asterisk,
    asterisk_conf,
    backends,
    database,
    disk_space,
    routing,
)
from pbx_bridge.health_check import prompts as prompt_checks
from pbx_bridge.health_check.findings import Finding, Status, ok, problem, skipped, warning
from pbx_bridge.health_check.runner import Check, run_all
from storage.database import make_engine, make_session_factory
from storage.keys import master_keys_in_use


def config_findings(settings: Settings, source: str) -> list[Finding]:
    findings = [ok("config", f"{source} is valid", source=source)]
    if not settings.ari.password.get_secret_value():
        findings.append(problem("config", "ari.password: not set: give the password of the "
                                "ARI user in Asterisk's ari.conf"))
    return findings


async def run_checks(settings: Settings, source: str) -> list[Finding]:
    timeout = settings.check.timeout_s
    findings = config_findings(settings, source)
    engine = make_engine(settings.database.url)
    ari = asterisk.client_for(settings.ari, timeout)
    manifest: list[Manifest] = []
    db_ok = False
    routes_read: list[asyncio.Future[list[ResolvedRoute]]] = []

    async def read_routes() -> list[ResolvedRoute]:
        async with make_session_factory(engine)() as session:
            return await list_routes(session)

    def routes() -> Awaitable[list[ResolvedRoute]]:
        """The routes, read once for every check that needs them (shielded: one check
        stopped at its time limit does not stop the read for the others)."""
        if not routes_read:
            routes_read.append(asyncio.ensure_future(read_routes()))
        return asyncio.shield(routes_read[0])

    async def offered() -> prompt_checks.Offered:
        """The languages callers may hear beside the service's own (without the
        database, those of the configuration only)."""
        default = settings.default_route.language or settings.prompts.default_language
        return prompt_checks.offered_languages(
            await routes() if db_ok else [], default.value,
            settings.prompts.country_languages)

    async def prompt_manifest() -> list[Finding]:
        found, loaded = await prompt_checks.load_manifest(settings.prompts)
        if loaded is not None:
            manifest.append(loaded)
        return found

    async def prompt_files() -> list[Finding]:
        return await prompt_checks.check_files(manifest[0], settings.prompts,
                                               settings.check, await offered())

    async def prompt_languages() -> list[Finding]:
        found = prompt_checks.language_findings(manifest[0], await offered())
        if not db_ok:
            found.append(warning("prompts.languages", "the routes' languages were not "
                                 "checked: they are in the database (see database)"))
        return found

    async def visible_prompts() -> list[Finding]:
        return await prompt_checks.check_visible(ari, manifest[0], settings.prompts,
                                                 await offered())

    async def jurisdiction() -> list[Finding]:
        return backends.jurisdiction_findings(await routes(), settings.storage)

    async def outbound_users() -> list[str]:
        async with make_session_factory(engine)() as session:
            return await routing.outbound_users(session)

    async def ring_groups() -> list[Finding]:
        async with make_session_factory(engine)() as session:
            return await routing.check_ring_groups(session, await routes(),
                                                   settings.default_route.target)

    async def master_keys() -> list[Finding]:
        async with make_session_factory(engine)() as session:
            in_use = await master_keys_in_use(session)
        return await backends.check_master_keys(settings.storage, in_use)

    try:
        first = await run_all([
            Check("database", lambda: database.check_database(engine, settings.database.url)),
            Check("asterisk.ari", lambda: asterisk.check_ari(ari, settings.ari)),
            Check("asterisk.sessions",
                  lambda: asterisk_conf.check_sessions(settings.ari, settings.check)),
            Check("asterisk.tone_zone", lambda: asterisk_conf.check_tone_zone(settings.check)),
            Check("prompts.manifest", prompt_manifest),
            Check("storage.backends", lambda: backends.check_backends(
                settings.storage, timeout)),
            Check("storage.encryption", lambda: backends.check_encryption(settings.storage)),
            Check("storage.free_space", lambda: disk_space.check_free_space(
                settings.storage, settings.check.min_free_mb)),
        ], timeout)
        ari_ok = _passed(first, "asterisk.ari")
        db_ok = _passed(first, "database")
        ari_down = "ARI is not reachable (see asterisk.ari)"
        second_checks = []
        if manifest:
            second_checks += [Check("prompts.files", prompt_files),
                              Check("prompts.languages", prompt_languages)]
        later: list[Finding] = []
        if ari_ok:
            second_checks += [
                Check("asterisk.modules", lambda: asterisk.check_modules(ari)),
                Check("asterisk.recordings", lambda: asterisk.check_recording_folder(ari)),
                Check("asterisk.clock",
                      lambda: asterisk.check_clock(ari, settings.check.max_clock_skew_s)),
                Check("asterisk.dialplan", lambda: asterisk.check_dialplan(
                    ari, settings.ari, timeout, outbound_users if db_ok else None)),
            ]
            local = settings.ari.recordings_dir
            if local is not None:
                second_checks.append(Check(
                    "asterisk.recordings_dir",
                    lambda: asterisk.check_recordings_dir_is_asterisks(ari, local)))
            if manifest:
                second_checks.append(Check("prompts.asterisk", visible_prompts))
        else:
            later += [skipped(n, ari_down) for n in
                      ("asterisk.modules", "asterisk.recordings", "asterisk.clock",
                       "asterisk.dialplan", "prompts.asterisk")]
            if settings.ari.recordings_dir is not None:
                later.append(skipped("asterisk.recordings_dir", ari_down))
        if db_ok:
            second_checks += [Check("storage.jurisdiction", jurisdiction),
                              Check("storage.master_keys", master_keys),
                              Check(routing.CHECK, ring_groups)]
        else:
            later += [skipped("storage.jurisdiction",
                              "the routes' rules need the database (see database)"),
                      skipped("storage.master_keys",
                              "the keys in use are in the database (see database)"),
                      skipped(routing.CHECK, "the routes are in the database (see database)")]
        second = await run_all(second_checks, timeout)
    finally:
        for read in routes_read:
            read.cancel()
        await ari.aclose()
        await engine.dispose()
    return _ordered([*findings, *first, *second, *later])


def _passed(findings: list[Finding], check: str) -> bool:
    return not any(f.check == check and f.status is Status.PROBLEM for f in findings)


_AREAS = ("config", "database", "routes", "asterisk", "prompts", "storage")


def _ordered(findings: list[Finding]) -> list[Finding]:
    """Grouped by area (stable within one), so a reader sees one subject at a time."""
    def area(f: Finding) -> int:
        head = f.check.split(".", 1)[0]
        return _AREAS.index(head) if head in _AREAS else len(_AREAS)
    return sorted(findings, key=area)
