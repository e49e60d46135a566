"""Asterisk as the service needs it, asked over ARI: reachable with our credentials, a
version we support, the modules the call flow uses, its clock, and our dialplan."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from pbx_bridge.ari.errors import AriAuthError, AriConnectionError, AriError, AriServerError
from pbx_bridge.ari.rest import AriClient
from pbx_bridge.ari.stream import EventStream
from pbx_bridge.config import AriSettings
from pbx_bridge.health_check.findings import Finding, ok, problem, warning
from pbx_bridge.recording_source import RecordingsDirError, check_recordings_dir

SUPPORTED_MAJOR = 22
INBOUND_CONTEXT = "pbx-bridge-inbound"
FALLBACK_CONTEXT = "pbx-bridge-fallback"
OUTBOUND_CONTEXT = "pbx-bridge-outbound"


# -- decisions -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModuleNeed:
    """Any one of `modules` must be running; `why` tells the admin what breaks without it."""

    modules: tuple[str, ...]
    why: str


REQUIRED_MODULES: tuple[ModuleNeed, ...] = (
    ModuleNeed(("res_stasis.so",), "Stasis applications"),
    ModuleNeed(("app_stasis.so",), "Stasis() in the dialplan"),
    ModuleNeed(("res_ari.so",), "ARI"),
    *(
        ModuleNeed((f"res_ari_{name}.so",), f"ARI /{name}")
        for name in ("applications", "asterisk", "bridges", "channels", "events",
                     "playbacks", "recordings", "sounds")
    ),
    ModuleNeed(("res_stasis_answer.so",), "answering callers"),
    ModuleNeed(("res_stasis_playback.so",), "playing the disclosure"),
    ModuleNeed(("res_stasis_recording.so", "app_mixmonitor.so"), "recording"),
    ModuleNeed(("res_stasis_snoop.so",), "the evidence clip and stereo legs"),
    ModuleNeed(("chan_pjsip.so",), "PJSIP callers and agents"),
)


def missing_modules(
    running: Collection[str], needs: Iterable[ModuleNeed] = REQUIRED_MODULES
) -> list[ModuleNeed]:
    """The needs none of whose modules is running."""
    return [need for need in needs if not any(m in running for m in need.modules)]


def version_finding(version: str) -> Finding:
    match = re.match(r"(?:GIT-)?(\d+)\.", version)
    if match is None:
        return warning("asterisk.version", f"Asterisk version {version!r} not recognised; "
                       f"pbx-bridge is built and tested for Asterisk {SUPPORTED_MAJOR}",
                       version=version)
    major = int(match.group(1))
    if major != SUPPORTED_MAJOR:
        return warning("asterisk.version", f"Asterisk {version}: pbx-bridge is built and "
                       f"tested for Asterisk {SUPPORTED_MAJOR}; upgrade or test this one",
                       version=version, major=major)
    return ok("asterisk.version", f"Asterisk {version}", version=version, major=major)


def clock_skew(sent: float, received: float, asterisk_time: float) -> float:
    """Asterisk's clock minus ours, taking its answer as made halfway through the trip."""
    return asterisk_time - (sent + received) / 2


def clock_finding(skew_s: float, round_trip_s: float, limit_s: float) -> Finding:
    details = {"skew_s": round(skew_s, 3), "round_trip_s": round(round_trip_s, 3),
               "limit_s": limit_s}
    # The answer could have been made anywhere within the trip: only what exceeds the
    # limit by more than half the trip is certainly too much.
    if abs(skew_s) - round_trip_s / 2 > limit_s:
        ahead = "ahead of" if skew_s > 0 else "behind"
        return problem("asterisk.clock", f"Asterisk's clock is {abs(skew_s):.1f} s {ahead} "
                       f"this host's (limit {limit_s:g} s): run NTP (chrony) on both",
                       **details)
    return ok("asterisk.clock", f"clocks agree within {abs(skew_s):.3f} s", **details)


# -- checks --------------------------------------------------------------------------------

def client_for(settings: AriSettings, timeout_s: float) -> AriClient:
    return AriClient(
        settings.url, settings.username, settings.password.get_secret_value(),
        app=settings.app, timeout=min(settings.request_timeout_s, timeout_s),
        # A few connections: the check must never be what pushes Asterisk over its limit.
        max_connections=4,
    )


def ari_error_message(settings: AriSettings, exc: AriError) -> str:
    if isinstance(exc, AriAuthError):
        return (f"ARI at {settings.url} refused user {settings.username!r} ({exc.status}): "
                "set [ari] username and password to the user in Asterisk's ari.conf")
    if isinstance(exc, AriConnectionError):
        return (f"cannot reach ARI at {settings.url}: {exc}; is Asterisk running with "
                "http.conf enabled on that address and port ([ari] url)?")
    return f"ARI at {settings.url} answered unexpectedly: {exc}"


async def check_ari(ari: AriClient, settings: AriSettings) -> list[Finding]:
    try:
        info = await ari.info()
    except AriError as exc:
        return [problem("asterisk.ari", ari_error_message(settings, exc))]
    return [
        ok("asterisk.ari", f"ARI at {settings.url} answers as user {settings.username!r}"),
        version_finding(info.version),
    ]


async def check_modules(ari: AriClient) -> list[Finding]:
    modules = await ari.modules()
    running = {m.name for m in modules if m.status.lower() == "running"}
    missing = missing_modules(running)
    if not missing:
        return [ok("asterisk.modules", f"all {len(REQUIRED_MODULES)} needed modules running")]
    return [
        problem("asterisk.modules", f"module {' or '.join(need.modules)} is not loaded "
                f"(needed for {need.why}): `module load {need.modules[0]}` and remove any "
                "noload for it from modules.conf", module=need.modules[0])
        for need in missing
    ]


async def check_recording_folder(ari: AriClient) -> list[Finding]:
    """Asterisk writes every recording into {astspooldir}/recording; without that folder
    each recording fails (ARI answers 500 when listing it, as when starting one)."""
    try:
        stored = await ari.list_stored_recordings()
    except AriServerError as exc:
        spool = await ari.get_global_variable("ASTSPOOLDIR") or "its spool folder"
        return [problem("asterisk.recordings", f"Asterisk cannot use its recording folder "
                        f"{spool}/recording ({exc.message}): create it, writable by the user "
                        "Asterisk runs as", folder=f"{spool}/recording")]
    return [ok("asterisk.recordings", f"Asterisk's recording folder is usable "
               f"({len(stored)} recording(s) there now)", waiting=len(stored))]


async def check_recordings_dir_is_asterisks(ari: AriClient, folder: Path) -> list[Finding]:
    """``[ari] recordings_dir`` is the admin's word that the folder is this Asterisk's.
    The service falls back to ARI for any file not there, so a wrong folder loses
    nothing but undoes the setting: told as a warning, proven by the recordings Asterisk
    lists now being files there (by its ASTSPOOLDIR when it lists none)."""
    name = "asterisk.recordings_dir"
    try:
        await asyncio.to_thread(check_recordings_dir, folder)
    except RecordingsDirError as exc:
        return [problem(name, str(exc), folder=str(folder))]
    stored = await ari.list_stored_recordings()
    if stored:
        here = await asyncio.to_thread(
            lambda: [r.name for r in stored if (folder / f"{r.name}.{r.format}").is_file()])
        if len(here) == len(stored):
            return [ok(name, f"{folder} holds the {len(stored)} recording(s) Asterisk lists "
                       "now: read there, not over ARI", folder=str(folder))]
        return [warning(name, f"{folder} holds {len(here)} of the {len(stored)} recording(s) "
                        "Asterisk lists now: is it this Asterisk's recording folder? Files "
                        "not there are fetched over ARI", folder=str(folder),
                        listed=len(stored), present=len(here))]
    spool = await ari.get_global_variable("ASTSPOOLDIR")
    if spool and Path(spool) / "recording" == folder:
        return [ok(name, f"{folder} is Asterisk's recording folder by its ASTSPOOLDIR",
                   folder=str(folder))]
    return [warning(name, f"cannot confirm {folder} is Asterisk's recording folder: Asterisk "
                    f"names {spool or '(unknown)'}/recording and holds no recording to "
                    "compare now (a container or chroot may name it differently); run the "
                    "check again while a call is recorded", folder=str(folder))]


async def check_clock(ari: AriClient, limit_s: float) -> list[Finding]:
    sent = time.time()
    pong = await ari.ping()
    received = time.time()
    if pong.timestamp is None:
        return [warning("asterisk.clock", "Asterisk's ping carried no time; clock not compared")]
    skew = clock_skew(sent, received, pong.timestamp.timestamp())
    return [clock_finding(skew, received - sent, limit_s)]


def context_findings(
    exists: dict[str, bool], outbound_users: list[str] | None = None
) -> list[Finding]:
    """``outbound_users``: what configures agents' calls out (outbound routes, extensions'
    outbound cells); None when the database could not say."""
    findings = []
    if exists[INBOUND_CONTEXT]:
        findings.append(ok("asterisk.dialplan", f"context {INBOUND_CONTEXT} present"))
    else:
        findings.append(problem(
            "asterisk.dialplan", f"dialplan context {INBOUND_CONTEXT} is missing: copy "
            "dialplan/pbx-bridge.conf to /etc/asterisk/, `#include pbx-bridge.conf` from "
            "extensions.conf and `dialplan reload`", context=INBOUND_CONTEXT))
    if not exists[FALLBACK_CONTEXT]:
        findings.append(warning(
            "asterisk.dialplan", f"dialplan context {FALLBACK_CONTEXT} is missing: callers "
            "are cut off without a word while the service is down (dialplan/pbx-bridge.conf "
            "has it)", context=FALLBACK_CONTEXT))
    if exists.get(OUTBOUND_CONTEXT, True):
        if OUTBOUND_CONTEXT in exists:
            findings.append(ok("asterisk.dialplan", f"context {OUTBOUND_CONTEXT} present"))
    elif outbound_users:
        findings.append(problem(
            "asterisk.dialplan", f"dialplan context {OUTBOUND_CONTEXT} is missing, yet "
            f"{' and '.join(outbound_users)} are configured: agents' calls out never reach "
            "pbx-bridge, so callees are not told and nothing is recorded; copy "
            "dialplan/pbx-bridge.conf (it has the context), send the agents' outbound "
            f"dialling to {OUTBOUND_CONTEXT} and `dialplan reload`", context=OUTBOUND_CONTEXT))
    elif outbound_users is None:
        findings.append(warning(
            "asterisk.dialplan", f"dialplan context {OUTBOUND_CONTEXT} is missing; whether "
            "outbound routes or extensions' outbound cells need it was not checked: they are "
            "in the database (see database)", context=OUTBOUND_CONTEXT))
    return findings


async def check_dialplan(
    ari: AriClient, settings: AriSettings, timeout_s: float,
    outbound_users: Callable[[], Awaitable[list[str]]] | None = None,
) -> list[Finding]:
    """ARI lists no dialplan, and evaluates functions only on a channel: a channel that is
    created but never dialed (so no dialplan runs) asks DIALPLAN_EXISTS for us. It must
    sit in a Stasis application of ours, registered for the moment by an event socket.
    ``outbound_users`` reads what needs [pbx-bridge-outbound] (None: the database is away)."""
    app = f"{settings.app}-check-{uuid.uuid4().hex[:8]}"
    channel_id = f"{app}-probe"
    stream = EventStream(settings.url, settings.username,
                         settings.password.get_secret_value(), app)
    async with stream:
        try:
            # Connected: the application exists while the socket is open.
            await asyncio.wait_for(anext(stream), timeout_s)
        except TimeoutError:
            return [problem("asterisk.dialplan", f"dialplan not checked: ARI's event "
                            f"websocket did not connect within {timeout_s:g} s "
                            f"({stream.last_error}); the service needs it too")]
        await ari.create_channel(f"Local/probe@{app}", app=app, channel_id=channel_id)
        try:
            exists = {}
            for context in (INBOUND_CONTEXT, FALLBACK_CONTEXT, OUTBOUND_CONTEXT):
                value = await ari.get_variable(channel_id, f"DIALPLAN_EXISTS({context})")
                exists[context] = (value or "").strip() == "1"
        finally:
            with contextlib.suppress(AriError):
                await ari.hangup(channel_id)
    users = None if outbound_users is None else await outbound_users()
    return context_findings(exists, users)

