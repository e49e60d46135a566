"""Wires config, database, prompts, ARI and the recording pipeline; runs them; stops them.

Start-up checks everything it can before taking a single call (database migrated, prompts
built, ARI credentials set), because a service that fails on the first caller is worse
than one that refuses to start with a message saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from pbx_bridge.ari import AriClient, EventStream
from pbx_bridge.audit_watch import AuditTrailWatch
from pbx_bridge.calls.journal import CallJournal
from pbx_bridge.calls.routes import list_routes
from pbx_bridge.commands.taker import CommandTaker
from pbx_bridge.config import ConfigError, Language, Settings, StorageSettings
from pbx_bridge.flow.app import ChannelOwnership, StasisApp
from pbx_bridge.flow.call_commands import LiveCallCommands
from pbx_bridge.flow.context import FlowContext
from pbx_bridge.flow.prompts import PromptCatalogue
from pbx_bridge.jurisdiction import check_routes
from pbx_bridge.metrics_server import serving_metrics
from pbx_bridge.recording_source import check_recordings_dir, recording_source
from pbx_bridge.recordings_admin import deleter_from_settings
from pbx_bridge.storage_setup import (
    build_backends,
    build_encryptor,
    build_targets,
    closing_backends,
    load_keyring,
    sidecar_facts,
)
from pbx_bridge.subjects.due_report import DueRequestsReporter
from pbx_bridge.subjects.export_expiry import ExportExpirer
from pbx_bridge.subjects.index import SubjectKeyError, subject_index_from_settings
from storage.database import ensure_migrated, make_engine, make_session_factory
from storage.loop_lag import LoopLagMonitor
from storage.pipeline import RecordingPipeline
from storage.retention import Purger
from storage.transcode import require_format

log = logging.getLogger("pbx_bridge")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, query strings included (an originate's caller
    # id would appear unmasked); the driver and socket libraries drown our own DEBUG.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for noisy in ("httpcore", "aiosqlite", "websockets", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))


def calls_first(storage: StorageSettings) -> LoopLagMonitor | None:
    """The monitor that holds storage back while calls need the loop (None: off)."""
    if storage.busy_lag_ms <= 0:
        return None
    return LoopLagMonitor(
        busy_lag_s=storage.busy_lag_ms / 1000, max_wait_s=storage.busy_max_wait_s
    )


async def run(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; live calls are left to Asterisk and adopted on restart."""
    configure_logging(settings.log.level)
    if not settings.ari.password.get_secret_value():
        raise ConfigError("ari.password: not set (the password of the ARI user in ari.conf)")
    if settings.ari.recordings_dir is not None:
        await asyncio.to_thread(check_recordings_dir, settings.ari.recordings_dir)
    try:
        # Reads (or creates, once) the key file: file I/O, off the loop.
        subjects = await asyncio.to_thread(subject_index_from_settings, settings.privacy)
    except SubjectKeyError as exc:
        raise ConfigError(str(exc)) from exc

    engine = make_engine(settings.database.url)
    try:
        await ensure_migrated(engine)
        sessions = make_session_factory(engine)
        async with sessions() as session:
            check_routes(await list_routes(session), settings.storage)
        prompts = await PromptCatalogue.load(
            settings.prompts.build_dir, settings.prompts.sound_prefix
        )
        prompts.check_complete([language.value for language in Language])
        async with AriClient(
            settings.ari.url,
            settings.ari.username,
            settings.ari.password.get_secret_value(),
            app=settings.ari.app,
            timeout=settings.ari.request_timeout_s,
            max_connections=settings.ari.max_connections,
        ) as ari:
            storage = settings.storage
            require_format(storage.format)
            backends = build_backends(storage)
            targets = build_targets(storage, backends)
            source = recording_source(ari, settings.ari.recordings_dir)
            keyring = load_keyring(storage, targets)
            purger = Purger(
                sessions,
                deleter_from_settings(settings, sessions, backends, source=source),
                interval_s=settings.retention.purge_interval_s,
            )
            loop_lag = calls_first(storage)
            pipeline = RecordingPipeline(
                sessions,
                source,
                storage.spool_dir,
                targets,
                audio_format=storage.format,
                cache_days=storage.cache_days,
                max_attempts=storage.max_attempts,
                copy_retry_initial_s=storage.retry_initial_s,
                copy_retry_max_s=storage.retry_max_s,
                encryptor=build_encryptor(sessions, keyring),
                keyring=keyring,
                audit_interval_s=storage.audit_interval_s,
                audit_limit=storage.audit_limit,
                sidecar_facts=sidecar_facts(
                    sessions, unmasked_caller=storage.sidecar_unmasked_caller
                ),
                on_settled=purger.purge_recording_if_expired,
                copy_after_call_ends=True,
                calm=None if loop_lag is None else loop_lag.calm,
            )
            due_reporter = DueRequestsReporter(
                sessions, soon_days=settings.privacy.due_soon_days
            )
            expirer = ExportExpirer(sessions)
            audit_watch = (
                AuditTrailWatch(sessions, interval_s=settings.privacy.audit_verify_interval_s)
                if settings.privacy.audit_verify_interval_s > 0
                else contextlib.nullcontext()
            )
            async with (
                loop_lag or contextlib.nullcontext(),
                closing_backends(backends),
                pipeline,
                purger,
                due_reporter,
                expirer,
                audit_watch,
            ):
                ownership = ChannelOwnership()
                ctx = FlowContext(
                    ari=ari,
                    app=settings.ari.app,
                    sessions=sessions,
                    journal=CallJournal(sessions, subjects),
                    pipeline=pipeline,
                    prompts=prompts,
                    ownership=ownership,
                    call=settings.call,
                    retention=settings.retention,
                    default_route=settings.default_route,
                    default_language=settings.prompts.default_language,
                    subjects=subjects,
                    request_due_days=settings.privacy.due_days,
                    country_languages=settings.prompts.country_languages,
                    default_outbound_route=settings.default_outbound_route,
                )
                stream = EventStream(
                    settings.ari.url,
                    settings.ari.username,
                    settings.ari.password.get_secret_value(),
                    settings.ari.app,
                    initial_backoff_s=settings.ari.reconnect_initial_s,
                    max_backoff_s=settings.ari.reconnect_max_s,
                )
                app = StasisApp(ctx, ownership)
                commands = CommandTaker(
                    engine, sessions, LiveCallCommands(app.session_of),
                    node=settings.commands.node,
                    poll_interval_s=settings.commands.poll_interval_s,
                )
                async with serving_metrics(settings, sessions, app, stream), commands:
                    await _serve(app, stream)
    finally:
        await engine.dispose()


async def _serve(app: StasisApp, stream: EventStream) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("pbx-bridge started")
    app_task = asyncio.create_task(app.run(stream), name="stasis app")
    stop_task = asyncio.create_task(stop.wait(), name="stop signal")
    try:
        await asyncio.wait({app_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        stop_task.cancel()
        live = app.live_calls
        app_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app_task
        await stream.close()
        log.info("pbx-bridge stopped (%d live calls left to Asterisk, adopted on restart)", live)
    if app_task.done() and not app_task.cancelled() and app_task.exception() is not None:
        raise app_task.exception()  # type: ignore[misc]
