"""`pbx-bridge check`: its decisions as pure functions, and the command's output and exit
code against a database and an Asterisk that are not there."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from cli_support import clean_pbx_env, cli  # noqa: F401  (clean_pbx_env: autouse fixture)
from sqlalchemy import delete

from pbx_bridge.ari.errors import AriNotFound
from pbx_bridge.ari.models import Sound, SoundFormat
from pbx_bridge.ari.rest import AriClient
from pbx_bridge.calls.extensions import set_extension
from pbx_bridge.calls.models import RingGroup
from pbx_bridge.calls.outbound_routes import set_outbound_route
from pbx_bridge.calls.ring_groups import Member, set_group
from pbx_bridge.calls.routes import ResolvedRoute, set_route
from pbx_bridge.config import (
    Announcement,
    AriSettings,
    CheckSettings,
    Language,
    LegalBasis,
    OutboundRouteSettings,
    PromptSettings,
    RecordingMode,
    RouteSettings,
    StorageSettings,
    TimeoutRule,
)
from pbx_bridge.flow.prompts import REQUIRED_PROMPTS, Manifest, ManifestEntry
from pbx_bridge.health_check import (
    asterisk,
    asterisk_conf,
    backends,
    database,
    disk_space,
    routing,
)
from pbx_bridge.health_check import prompts as prompt_checks
from pbx_bridge.health_check.findings import (
    Status,
    exit_code,
    ok,
    problem,
    render_text,
    skipped,
    to_document,
    warning,
)
from pbx_bridge.sandbox.ports import free_ports
from storage.backends.probe import ProbeResult, ProbeStep
from storage.database import make_engine, make_session_factory
from storage.keyring import Keyring
from storage.keys import create_data_key
from storage.models import Recording

MB = 1024 * 1024
RECORDING = "0b7d3c1e-5a2f-4c7e-9d1a-000000000001"


# -- findings and exit code ----------------------------------------------------------------

def test_warnings_pass_problems_fail_and_the_summary_says_which() -> None:
    good = [ok("a", "fine"), warning("b", "close to the limit")]
    bad = [*good, problem("c", "broken: fix it"), skipped("d", "c is broken")]
    assert exit_code(good) == 0 and exit_code(bad) == 1
    assert render_text(good).splitlines() == [
        "OK   a: fine", "WARN b: close to the limit",
        "all checks passed, 1 warning (not failing)"]
    assert render_text(bad).splitlines()[2:] == [
        "FAIL c: broken: fix it", "SKIP d: not checked: c is broken",
        "1 problem to fix, 1 warning (not failing)"]


def test_json_document_is_stable() -> None:
    doc = to_document([ok("a", "fine", n=1), problem("b", "broken")])
    assert doc == {
        "ok": False,
        "counts": {"ok": 1, "warning": 0, "problem": 1, "skipped": 0},
        "checks": [
            {"name": "a", "status": "ok", "message": "fine", "details": {"n": 1}},
            {"name": "b", "status": "problem", "message": "broken", "details": {}},
        ],
    }


# -- Asterisk ------------------------------------------------------------------------------

def test_module_needs_accept_either_recorder_and_name_what_is_missing() -> None:
    every = {m for need in asterisk.REQUIRED_MODULES for m in need.modules}
    assert asterisk.missing_modules(every) == []
    assert asterisk.missing_modules(every - {"app_mixmonitor.so"}) == []
    without_recording = every - {"app_mixmonitor.so", "res_stasis_recording.so"}
    (need,) = asterisk.missing_modules(without_recording)
    assert need.modules == ("res_stasis_recording.so", "app_mixmonitor.so")
    names = {n.modules[0] for n in asterisk.missing_modules(every - {"res_stasis_snoop.so",
                                                                     "chan_pjsip.so"})}
    assert names == {"res_stasis_snoop.so", "chan_pjsip.so"}


def test_version_other_than_22_is_a_warning() -> None:
    assert asterisk.version_finding("22.10.1+dfsg-1").status is Status.OK
    assert asterisk.version_finding("20.5.0").status is Status.WARNING
    assert asterisk.version_finding("GIT-master-abc").status is Status.WARNING


def test_clock_skew_takes_the_answer_as_made_halfway_through_the_trip() -> None:
    assert asterisk.clock_skew(100.0, 100.2, 105.1) == pytest.approx(5.0)
    assert asterisk.clock_finding(1.9, 0.01, 2.0).status is Status.OK
    far = asterisk.clock_finding(-3.0, 0.01, 2.0)
    assert far.status is Status.PROBLEM and "3.0 s behind" in far.message
    # Within the limit once the trip's uncertainty is allowed for.
    assert asterisk.clock_finding(2.4, 1.0, 2.0).status is Status.OK


def test_missing_inbound_context_is_a_problem_missing_fallback_a_warning() -> None:
    both = {asterisk.INBOUND_CONTEXT: True, asterisk.FALLBACK_CONTEXT: True}
    assert [f.status for f in asterisk.context_findings(both)] == [Status.OK]
    found = asterisk.context_findings({asterisk.INBOUND_CONTEXT: False,
                                       asterisk.FALLBACK_CONTEXT: False})
    assert [f.status for f in found] == [Status.PROBLEM, Status.WARNING]
    assert "pbx-bridge-inbound is missing" in found[0].message


def test_missing_outbound_context_is_a_problem_only_while_calls_out_are_configured() -> None:
    present = {asterisk.INBOUND_CONTEXT: True, asterisk.FALLBACK_CONTEXT: True}
    missing = {**present, asterisk.OUTBOUND_CONTEXT: False}
    found = asterisk.context_findings(missing, ["outbound route(s) +44, 0090"])
    assert [f.status for f in found] == [Status.OK, Status.PROBLEM]
    assert found[1].message.startswith(
        "dialplan context pbx-bridge-outbound is missing, yet outbound route(s) +44, 0090 "
        "are configured: agents' calls out never reach pbx-bridge")
    assert found[1].details["context"] == "pbx-bridge-outbound"
    assert [f.status for f in asterisk.context_findings(missing, [])] == [Status.OK]
    unknown = asterisk.context_findings(missing, None)  # the database did not answer
    assert [f.status for f in unknown] == [Status.OK, Status.WARNING]
    assert "was not checked" in unknown[1].message
    here = asterisk.context_findings({**present, asterisk.OUTBOUND_CONTEXT: True}, ["x"])
    assert [f.message for f in here] == ["context pbx-bridge-inbound present",
                                         "context pbx-bridge-outbound present"]


def test_outbound_use_names_the_routes_and_the_extensions_cells() -> None:
    assert routing.outbound_use_phrase([], []) == []
    assert routing.outbound_use_phrase(["+44"], ["101", "102"]) == [
        "outbound route(s) +44", "the outbound cells of extension(s) 101, 102"]


def _ringing(did: str, target: str) -> ResolvedRoute:
    return ResolvedRoute(did, target, Announcement.BEFORE_CONNECT, Language.TR,
                         LegalBasis.CONSENT, TimeoutRule.DECLINED, 8, "default", False)


def test_a_route_or_the_default_route_ringing_a_missing_ring_group_is_a_problem() -> None:
    routes = [_ringing("2125550100", "group:sales"), _ringing("2125550101", "group:ghost"),
              _ringing("2125550102", "101")]
    found = routing.ring_group_findings(routes, "group:nobody", {"sales"})
    assert [(f.status, f.details["route"], f.details["group"]) for f in found] == [
        (Status.PROBLEM, "2125550101", "ghost"), (Status.PROBLEM, "default", "nobody")]
    assert found[0].message.startswith(
        "route 2125550101 rings ring group 'ghost', which does not exist")
    assert found[1].message.startswith(
        "[default_route] target rings ring group 'nobody', which does not exist")
    (fine,) = routing.ring_group_findings(routes[:1], "100", {"sales"})
    assert fine.status is Status.OK and fine.message == "the ring groups of 1 route(s) all exist"
    assert routing.ring_group_findings([], "100", set())[0].message == (
        "no route rings a ring group")


def test_http_conf_sessionlimit_with_asterisk_default() -> None:
    text = "[general]\nenabled = yes\n; sessionlimit = 5\nsessionlimit => 40 ; ours\n"
    assert asterisk_conf.http_session_limit(text) == 40
    assert asterisk_conf.http_session_limit("[general]\nenabled = yes\n") == 100
    assert asterisk_conf.http_session_limit("not ini at all [") == 100


def test_session_budget_warns_before_the_limit_and_fails_past_it() -> None:
    ari = AriSettings(max_connections=8, http_session_limit=100)
    assert [f.status for f in asterisk_conf.session_findings(ari, 10, None, None)] == [
        Status.OK]
    # 8 + 1 + 10 = 19 sessions wanted, 15 allowed: a warning naming both.
    tight = AriSettings(max_connections=8, http_session_limit=15)
    (found,) = asterisk_conf.session_findings(tight, 10, None, None)
    assert found.status is Status.WARNING and "sessionlimit 15" in found.message
    # The service alone needs more than Asterisk allows.
    (found,) = asterisk_conf.session_findings(AriSettings(max_connections=20,
                                                          http_session_limit=15), 0, None, None)
    assert found.status is Status.PROBLEM
    # http.conf is the truth when readable, and a disagreement is said.
    disagree = asterisk_conf.session_findings(ari, 10, 12, "/etc/asterisk/http.conf")
    assert [f.status for f in disagree] == [Status.WARNING, Status.WARNING]
    assert "set it to 12" in disagree[0].message


def test_default_tone_zone_from_the_cli_and_from_indications_conf() -> None:
    shown = "Country   Description\n===\ntr       Turkey\n===\nDefault tone zone: tr\n"
    assert asterisk_conf.default_zone_from_cli(shown) == "tr"
    assert asterisk_conf.default_zone_from_cli("Country   Description\n=====\n") is None
    assert asterisk_conf.default_zone_from_file("[general]\ncountry=tr\n[tr]\nring=450\n") == "tr"
    assert asterisk_conf.default_zone_from_file("[general]\ncountry=de\n[tr]\nring=1\n") is None
    assert asterisk_conf.default_zone_from_file("[general]\n[tr]\nring=1\n") is None


# -- prompts -------------------------------------------------------------------------------

def entry(language: str, name: str, sha: str = "a" * 64) -> ManifestEntry:
    return ManifestEntry(language, name, "text", "t" * 64, sha, "v1", "espeak-ng", 1.0,
                         f"{language}/{name}.wav")


def test_sound_ids_follow_asterisks_media_index() -> None:
    assert prompt_checks.sound_lookup("pbx-bridge", "tr", "disclosure") == (
        "tr/disclosure", "pbx-bridge")
    assert prompt_checks.sound_lookup("custom/pbx", "en", "busy") == ("pbx/en/busy", "custom")


def test_manifest_must_hold_every_prompt_in_every_language() -> None:
    full = {f"{lang.value}/{n}": entry(lang.value, n) for lang in Language
            for n in REQUIRED_PROMPTS}
    assert prompt_checks.missing_from_manifest(Manifest("now", "c", full)) == []
    del full["en/busy"]
    assert prompt_checks.missing_from_manifest(Manifest("now", "c", full)) == ["en/busy"]


def test_installed_prompt_missing_or_altered_is_named() -> None:
    entries = [entry("tr", "disclosure"), entry("en", "busy"), entry("en", "notice")]
    digests = {"tr/disclosure.wav": "a" * 64, "en/busy.wav": None, "en/notice.wav": "b" * 64}
    found = prompt_checks.hash_findings(Path("/snd/pbx"), entries, digests)
    assert [f.status for f in found] == [Status.PROBLEM, Status.PROBLEM]
    assert "en/busy: /snd/pbx/en/busy.wav is missing" in found[0].message
    assert "en/notice: /snd/pbx/en/notice.wav differs from the manifest" in found[1].message


def _route(did: str, language: Language = Language.TR,
           languages: tuple[str, ...] = ()) -> ResolvedRoute:
    return ResolvedRoute(did, "100", Announcement.BEFORE_CONNECT, language, LegalBasis.CONSENT,
                         TimeoutRule.DECLINED, 8, "default", False, languages=languages,
                         language_keys=tuple(str(n + 1) for n in range(len(languages))))


def test_every_language_a_caller_may_hear_is_offered_by_someone() -> None:
    routes = [_route("2125550100", languages=("tr", "de")), _route("2125550101", Language.EN),
              _route("2125550102", languages=("de", "tr", "en"))]
    offered = prompt_checks.offered_languages(routes, "tr", {"FR": "fr", "AT": "de"})
    assert offered == {
        "tr": ("the default route", "route 2125550100", "route 2125550102"),
        "de": ("route 2125550100", "route 2125550102", "[prompts] country_languages AT"),
        "en": ("route 2125550101", "route 2125550102"),
        "fr": ("[prompts] country_languages FR",),
    }


def _full(*languages: str) -> dict[str, ManifestEntry]:
    return {f"{lang}/{n}": entry(lang, n) for lang in languages for n in REQUIRED_PROMPTS}


def test_a_prompt_missing_in_an_offered_language_is_a_line_naming_who_offers_it() -> None:
    built = _full("tr", "en", "de")
    del built["de/busy"], built["de/confirm-not-objected"]
    offered = {"tr": ("the default route",), "de": ("route 2125550100", "route 2125550102"),
               "fr": ("[prompts] country_languages FR",)}
    found = prompt_checks.language_findings(Manifest("now", "c", built), offered)
    assert [f.status for f in found] == [Status.PROBLEM] * 3
    assert [f.message for f in found] == [
        "prompt de/confirm-not-objected is not built, and de is offered by route "
        "2125550100, route 2125550102: add prompts/de/confirm-not-objected.txt and run "
        "`pbx-bridge prompts build`",
        "prompt de/busy is not built, and de is offered by route 2125550100, route "
        "2125550102: add prompts/de/busy.txt and run `pbx-bridge prompts build`",
        "language fr (offered by [prompts] country_languages FR) has no prompts built: add "
        "prompts/fr/ with every prompt translated and run `pbx-bridge prompts build`, or "
        "stop offering it",
    ]
    assert found[0].details["offered_by"] == ["route 2125550100", "route 2125550102"]


def test_offered_languages_all_built_and_the_services_own_left_to_the_manifest_check(
) -> None:
    built = _full("tr", "en", "de")
    (found,) = prompt_checks.language_findings(
        Manifest("now", "c", built), {"tr": ("the default route",), "de": ("route 2125550100",)})
    assert (found.status, found.message) == (
        Status.OK, "every language offered is built: de (route 2125550100)")
    del built["en/busy"]  # the manifest check's: the service does not start without it
    (own,) = prompt_checks.language_findings(Manifest("now", "c", built),
                                             {"en": ("route 2125550101",)})
    assert own.status is Status.OK and "beside the service's own (tr, en)" in own.message


def test_an_offered_languages_prompt_missing_in_asterisk_names_who_offers_it() -> None:
    found = prompt_checks.hash_findings(
        Path("/snd/pbx"), [entry("de", "busy")], {"de/busy.wav": None},
        {"de": ("route 2125550100",)})
    assert found[0].message.startswith(
        "prompt de/busy (de is offered by route 2125550100): /snd/pbx/de/busy.wav is missing")


class SoundsOf:
    """Asterisk's media index as GET /sounds/{id} answers it: these ids, nothing else."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    async def get_sound(self, sound_id: str) -> Sound:
        if sound_id not in self.ids:
            raise AriNotFound(404, "GET", f"/sounds/{sound_id}", "Sound not found")
        return Sound(sound_id, (SoundFormat("pbx-bridge", "wav"),))


async def test_asterisk_must_find_the_prompts_of_every_offered_language() -> None:
    built = _full("tr", "en", "de", "fr")  # fr built, offered by no one: not asked
    installed = SoundsOf({key for key in built if not key.startswith("de/busy")})
    found = await prompt_checks.check_visible(
        cast(AriClient, installed), Manifest("now", "c", built), PromptSettings(),
        {"tr": ("the default route",), "de": ("route 2125550100",)})
    assert [(f.status, f.message) for f in found] == [(
        Status.PROBLEM, "Asterisk cannot find prompt de/busy (de is offered by route "
        "2125550100) (sound:pbx-bridge/de/busy): install the build as {Asterisk sounds}/"
        "pbx-bridge (`pbx-bridge prompts build` --out ...)")]
    everything = await prompt_checks.check_visible(
        cast(AriClient, SoundsOf(set(built))), Manifest("now", "c", built), PromptSettings(),
        {"de": ("route 2125550100",)})
    assert [f.message for f in everything] == [
        f"Asterisk finds all {3 * len(REQUIRED_PROMPTS)} prompts under sound:pbx-bridge/"]


# -- storage -------------------------------------------------------------------------------

def test_probe_failure_names_the_backend_and_the_step() -> None:
    result = ProbeResult("archive", ok=False, steps=[
        ProbeStep("put", False, "550 Permission denied", 0.1)])
    found = backends.probe_finding("archive", "TR", result)
    assert found.status is Status.PROBLEM
    assert "backend 'archive' (TR) failed at put: 550 Permission denied" in found.message
    assert "[storage.backends.archive]" in found.message


def test_route_requiring_another_country_is_a_problem() -> None:
    route = ResolvedRoute("2125550100", "100", Announcement.BEFORE_CONNECT, Language.TR,
                          LegalBasis.CONSENT, TimeoutRule.DECLINED, 8, "default", False,
                          require_jurisdiction="TR")
    storage = StorageSettings(local={"jurisdiction": "DE"})  # type: ignore[arg-type]
    (found,) = backends.jurisdiction_findings([route], storage)
    assert found.status is Status.PROBLEM and "route 2125550100 requires TR" in found.message
    assert backends.jurisdiction_findings([route], StorageSettings())[0].status is Status.OK


def test_encrypting_targets() -> None:
    assert backends.encrypting_targets(StorageSettings()) == []
    storage = StorageSettings(local={"encrypt": True})  # type: ignore[arg-type]
    assert backends.encrypting_targets(storage) == ["local"]


def test_free_space_problem_below_the_minimum_warning_below_twice() -> None:
    def status(free_mb: int) -> Status:
        return disk_space.free_space_finding("spool", Path("/s"), free_mb * MB, 10_000 * MB,
                                             1024 * MB).status
    assert status(5000) is Status.OK
    assert status(1500) is Status.WARNING
    assert status(1000) is Status.PROBLEM


def test_revision_behind_head_says_run_db_upgrade() -> None:
    assert database.revision_finding("db", "0003", "0003").status is Status.OK
    behind = database.revision_finding("db", None, "0003")
    assert behind.status is Status.PROBLEM and "pbx-bridge db upgrade" in behind.message


# -- the command ---------------------------------------------------------------------------

@pytest.fixture
def dead_asterisk_config(tmp_path: Path) -> Path:
    (port,) = free_ports(1)  # nothing listens there
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[ari]\nurl = "http://127.0.0.1:{port}"\npassword = "x"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/db.sqlite"\n'
        f'[storage]\nspool_dir = "{tmp_path}/spool"\n'
        f'[storage.local]\npath = "{tmp_path}/rec"\n'
        f'[prompts]\nbuild_dir = "{tmp_path}/prompts"\n'
        f'[check]\nasterisk_config_dir = "{tmp_path}/etc"\nasterisk_cli = []\n'
        f'asterisk_sounds_dir = "{tmp_path}/sounds"\nmin_free_mb = 0\ntimeout_s = 5\n'
    )
    return path


def test_command_names_each_problem_and_exits_1(dead_asterisk_config: Path) -> None:
    result = cli(dead_asterisk_config, "check")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    fails = [line for line in lines if line.startswith("FAIL")]
    assert any(line.startswith("FAIL database:") and "db upgrade" in line for line in fails)
    assert any(line.startswith("FAIL asterisk.ari: cannot reach ARI") for line in fails)
    assert any(line.startswith("FAIL prompts.manifest:") and "prompts build" in line
               for line in fails)
    assert "SKIP asterisk.modules: not checked: ARI is not reachable (see asterisk.ari)" in lines
    assert any(line.startswith("WARN asterisk.tone_zone: default tone zone not checked")
               for line in lines)
    assert any(line.startswith("OK   storage.backends: backend 'local'") for line in lines)
    assert lines[-1].startswith("3 problems to fix")


def test_command_names_each_prompt_missing_in_a_language_a_route_offers(
    dead_asterisk_config: Path,
) -> None:
    """A route offering German, built without two of its prompts, and a country mapped
    to French, never built: a line each, naming the route or the setting."""
    folder = dead_asterisk_config.parent
    with dead_asterisk_config.open("a") as config:
        config.write('[prompts.country_languages]\nFR = "fr"\n')
    built = _full("tr", "en", "de")
    del built["de/busy"], built["de/no-answer"]
    build = folder / "prompts"
    for item in built.values():
        (build / item.file).parent.mkdir(parents=True, exist_ok=True)
        (build / item.file).write_bytes(b"")
    (build / "manifest.json").write_text(Manifest("now", "c", built).to_json())
    assert cli(dead_asterisk_config, "db", "upgrade").exit_code == 0

    async def offer_german() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{folder}/db.sqlite")
        try:
            async with make_session_factory(engine)() as session:
                await set_route(session, "2125550100", default=RouteSettings(),
                                default_language=Language.TR, languages=("tr", "de"))
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(offer_german())
    result = cli(dead_asterisk_config, "check")
    assert result.exit_code == 1, result.output
    languages = [line for line in result.output.splitlines()
                 if line.startswith("FAIL prompts.languages")]
    assert languages == [
        "FAIL prompts.languages: prompt de/busy is not built, and de is offered by route "
        "2125550100: add prompts/de/busy.txt and run `pbx-bridge prompts build`",
        "FAIL prompts.languages: prompt de/no-answer is not built, and de is offered by "
        "route 2125550100: add prompts/de/no-answer.txt and run `pbx-bridge prompts build`",
        "FAIL prompts.languages: language fr (offered by [prompts] country_languages FR) "
        "has no prompts built: add prompts/fr/ with every prompt translated and run "
        "`pbx-bridge prompts build`, or stop offering it",
    ]
    assert "OK   prompts.manifest:" in result.output  # tr and en, the service's own, built


def test_command_names_a_missing_ring_group_and_reads_what_calls_out(
    dead_asterisk_config: Path,
) -> None:
    """A route whose group was removed behind the tools' back (a restored database) and a
    default route naming a group nobody made: a line each. The outbound routes and cells
    are read from the same database for the dialplan check."""
    folder = dead_asterisk_config.parent
    with dead_asterisk_config.open("a") as config:
        config.write('[default_route]\ntarget = "group:nobody"\n')
    assert cli(dead_asterisk_config, "db", "upgrade").exit_code == 0
    url = f"sqlite+aiosqlite:///{folder}/db.sqlite"

    async def configure() -> list[str]:
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                await set_group(session, "sales", members=[Member("101", 15)])
                await set_route(session, "2125550100", default=RouteSettings(),
                                default_language=Language.TR, target="group:sales")
                await session.execute(delete(RingGroup).where(RingGroup.name == "sales"))
                await set_outbound_route(session, "0090", default=OutboundRouteSettings(),
                                         default_language=Language.TR)
                await set_extension(session, "102", RecordingMode.ALWAYS,
                                    cells={"outbound_external": RecordingMode.NEVER})
                await set_extension(session, "103", RecordingMode.NEVER)
                await session.commit()
            async with make_session_factory(engine)() as session:
                return await routing.outbound_users(session)
        finally:
            await engine.dispose()

    assert asyncio.run(configure()) == [
        "outbound route(s) 0090", "the outbound cells of extension(s) 102"]
    result = cli(dead_asterisk_config, "check")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "routes.ring_groups" in line]
    assert lines == [
        "FAIL routes.ring_groups: route 2125550100 rings ring group 'sales', which does not "
        "exist: its callers reach nobody; create it (`pbx-bridge group set sales --members "
        "EXT,...`) or `pbx-bridge route set 2125550100 --target EXT`",
        "FAIL routes.ring_groups: [default_route] target rings ring group 'nobody', which "
        "does not exist: callers of every DID without a route reach nobody; create it "
        "(`pbx-bridge group set nobody --members EXT,...`) or change [default_route] target",
    ]


def test_command_json_for_monitoring(dead_asterisk_config: Path) -> None:
    assert cli(dead_asterisk_config, "db", "upgrade").exit_code == 0
    result = cli(dead_asterisk_config, "check", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["ok"] is False and doc["counts"]["problem"] == 2
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses["database"] == "ok" and statuses["asterisk.ari"] == "problem"
    assert statuses["storage.jurisdiction"] == "ok"


def test_command_reports_a_broken_config_file_as_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[ari]\nmax_connections = 0\nnonsense = 1\n')
    result = cli(path, "check")
    assert result.exit_code == 1
    fails = [line for line in result.output.splitlines() if line.startswith("FAIL config:")]
    assert len(fails) == 2
    assert any("ari.nonsense: unknown key" in line for line in fails)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) but never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


def test_an_asterisk_and_a_server_that_never_answer_do_not_hang_the_command(
    dead_asterisk_config: Path, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    monkeypatch.setenv("PBX_BRIDGE_ARI__URL", url)
    # Left to themselves, ARI and the FTP client would wait five minutes each.
    monkeypatch.setenv("PBX_BRIDGE_ARI__REQUEST_TIMEOUT_S", "300")
    monkeypatch.setenv("PBX_BRIDGE_CHECK__TIMEOUT_S", "2")
    with dead_asterisk_config.open("a") as config:
        config.write(f'[storage.backends.archive]\ntype = "ftp"\nhost = "127.0.0.1"\n'
                     f'port = {silent_port}\njurisdiction = "TR"\ntimeout_s = 300\n')
    monkeypatch.setenv("PBX_BRIDGE_STORAGE__TARGETS", '["local", "archive"]')
    started = time.monotonic()
    result = cli(dead_asterisk_config, "check")
    # Not a speed goal: only far below the five minutes a hang would take.
    assert result.exit_code == 1 and time.monotonic() - started < 120
    lines = result.output.splitlines()
    assert any(line.startswith(f"FAIL asterisk.ari: cannot reach ARI at {url}: ")
               and "did not answer in time" in line for line in lines), lines
    # The silent server is named; the working backend beside it still reported.
    assert "FAIL storage.backends: backend 'archive' (TR) did not answer within 2 s: is " \
        "the server up and reachable?" in lines
    assert any(line.startswith("OK   storage.backends: backend 'local'") for line in lines)


def test_master_key_findings() -> None:
    assert backends.master_key_findings({}, None, None)[0].status is Status.OK
    assert backends.master_key_findings({"k1": 3}, frozenset({"k1", "k2"}), None)[0].status \
        is Status.OK
    (gone,) = backends.master_key_findings({"k1": 3, "k2": 1}, frozenset({"k2"}), None)
    assert gone.status is Status.PROBLEM
    assert gone.message.startswith("master key k1 is not loaded but wraps 3 recording(s)'")
    (none,) = backends.master_key_findings({"k1": 3}, None, "no master key")
    assert none.status is Status.PROBLEM and "none loads: no master key" in none.message


def test_command_names_a_master_key_that_recordings_still_need(
    dead_asterisk_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir(mode=0o700)
    monkeypatch.setenv("PBX_BRIDGE_STORAGE__KEYS_DIR", str(keys_dir))
    assert cli(dead_asterisk_config, "db", "upgrade").exit_code == 0
    assert cli(dead_asterisk_config, "keys", "generate").exit_code == 0
    (key_file,) = keys_dir.glob("*.key")

    async def encrypt_one() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
        sessions = make_session_factory(engine)
        async with sessions() as session:
            session.add(Recording(id=RECORDING, call_id=RECORDING, kind="conversation",
                                  asterisk_name="r1", legal_basis="consent",
                                  retention_class="default", retention_days=60))
            await session.commit()
        await create_data_key(sessions, Keyring.load(keys_dir), RECORDING)
        await engine.dispose()

    asyncio.run(encrypt_one())

    def master_keys() -> dict[str, Any]:
        doc = json.loads(cli(dead_asterisk_config, "check", "--json").output)
        (found,) = [c for c in doc["checks"] if c["name"] == "storage.master_keys"]
        return found

    assert master_keys()["status"] == "ok"
    # The key file is lost (a new one made in its place): the old recording is unreadable.
    key_file.rename(tmp_path / key_file.name)
    assert cli(dead_asterisk_config, "keys", "generate").exit_code == 0
    found = master_keys()
    assert found["status"] == "problem"
    assert found["message"].startswith(f"master key {key_file.stem} is not loaded but wraps 1 "
                                       "recording(s)' data keys")


async def test_tone_zone_falls_back_to_indications_conf_when_the_cli_cannot_be_asked(
    tmp_path: Path,
) -> None:
    (tmp_path / "indications.conf").write_text("[general]\ncountry = tr\n[tr]\nring = 450\n")

    def settings(*command: str) -> CheckSettings:
        return CheckSettings(asterisk_config_dir=tmp_path, asterisk_cli=command)

    # A command that fails, one that is not there, one that prints something else.
    for command in (("false",), ("/nonexistent/asterisk", "-rx"), ("echo",)):
        (found,) = await asterisk_conf.check_tone_zone(settings(*command))
        assert found.status is Status.OK, found
        assert found.message.startswith(f"default tone zone tr (from {tmp_path}")
    (tmp_path / "indications.conf").write_text("[general]\n[tr]\nring = 450\n")
    (found,) = await asterisk_conf.check_tone_zone(settings())
    assert found.status is Status.PROBLEM and "sets no default tone zone" in found.message
    (tmp_path / "indications.conf").unlink()
    (found,) = await asterisk_conf.check_tone_zone(settings("false"))
    assert found.status is Status.WARNING and "default tone zone not checked" in found.message
