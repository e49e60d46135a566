"""The console's ASGI application: pages, the ``/api/v1`` API, ``/healthz``, static files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import Settings, WebSettings
from pbx_bridge.web import (
    account_page,
    admin_outbound_routes_page,
    admin_pages,
    admin_ring_groups_page,
    admin_user_edit_page,
    admin_users_page,
    api_admin,
    api_audit,
    api_call_commands,
    api_call_retention,
    api_calls,
    api_consents,
    api_dashboard,
    api_dsar,
    api_outbound_routes,
    api_recordings,
    api_ring_groups,
    api_shares,
    api_users,
    audit_page,
    call_page,
    calls_page,
    dashboard_page,
    dsar_page,
    error_handlers,
    health,
    input_guard,
    openapi_document,
    shares_page,
    sign_in,
)
from pbx_bridge.web.accounts import Accounts
from pbx_bridge.web.audit_verification import ChainVerifier
from pbx_bridge.web.call_search_setup import Subjects, cursor_signer
from pbx_bridge.web.cleanup import WebCleanup
from pbx_bridge.web.cookies import CookieNames
from pbx_bridge.web.dashboard_numbers import DashboardNumbers
from pbx_bridge.web.dsar_desk import DsarDesk
from pbx_bridge.web.i18n import Catalogue
from pbx_bridge.web.query_parameters import refuse_unknown_query
from pbx_bridge.web.security_headers import add_security_headers
from pbx_bridge.web.web_state import STATIC_DIR, WebState, make_templates
from storage.backends.base import Backend
from storage.playback import Player


class SecretKeyMissing(ValueError):
    """``[web] secret_key`` is not set: the console will not sign anything without it."""


def secret_key_of(web: WebSettings) -> bytes:
    if web.secret_key is None:
        raise SecretKeyMissing(
            "web.secret_key is not set: put one of at least 32 characters in [web] of the"
            " config (e.g. `openssl rand -hex 32`) or in PBX_BRIDGE_WEB__SECRET_KEY"
        )
    return web.secret_key.get_secret_value().encode()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """What runs beside the requests: the clean-up job from start-up on; at shutdown it
    stops and the dashboard's and the DSAR badge's background refreshes are cancelled and
    awaited, before the server disposes of the database engine (no task left pending,
    no connection left checked out)."""
    state: WebState = app.state.web
    cleanup: WebCleanup = app.state.cleanup
    cleanup.start()
    try:
        yield
    finally:
        await cleanup.stop()
        await state.dashboard.close()


def create_app(
    settings: Settings,
    accounts: Accounts,
    sessions: async_sessionmaker[AsyncSession],
    player: Player | None = None,
    *,
    dsar_backends: Mapping[str, Backend] | None = None,
) -> FastAPI:
    """``player``: recordings for listening (``storage_setup.build_player``); without
    one the media URLs answer 503. ``dsar_backends``: the storage backends erasures
    delete from (tests); by default the configured ones, as ``dsar run`` builds them.
    Its ``lifespan`` (uvicorn runs it; in-process tests enter
    ``app.router.lifespan_context(app)``) starts and stops the background work."""
    web = settings.web
    secret_key = secret_key_of(web)
    app = FastAPI(
        title="pbx-bridge",
        version=version("pbx-bridge"),
        description="Calls, consent proof, recordings and data-subject requests. "
        "Bearer tokens from `pbx-bridge tokens create`; errors as RFC 9457 problem JSON.",
        openapi_url="/api/v1/openapi.json",
        # The interactive docs load scripts from CDNs and inline: not under our CSP.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    subjects = Subjects(settings.privacy)
    app.state.web = WebState(
        settings=web,
        secret_key=secret_key,
        accounts=accounts,
        sessions=sessions,
        catalogue=Catalogue.load(settings.prompts.default_language.value),
        cookies=CookieNames(web),
        templates=make_templates(),
        cursor_signer=cursor_signer(secret_key),
        subjects=subjects,
        retention=settings.retention,
        dashboard=DashboardNumbers(
            sessions, accounts, soon_days=settings.privacy.due_soon_days,
            refresh_s=web.dashboard_refresh_s,
        ),
        dsar=DsarDesk(settings, sessions, accounts, subjects, backends=dsar_backends),
        config=settings,
    )
    app.state.player = player
    app.state.audit_verifier = ChainVerifier(sessions, accounts)
    app.state.cleanup = WebCleanup(sessions, settings.auth, interval_s=web.cleanup_interval_s)
    # Inside the headers' middleware, so its refusals carry them too.
    app.middleware("http")(input_guard.refuse_nul)
    app.middleware("http")(add_security_headers)
    error_handlers.install(app)
    openapi_document.install(app)
    api_dependencies = [Depends(refuse_unknown_query)]
    app.include_router(health.router)
    app.include_router(api_admin.router, dependencies=api_dependencies)
    app.include_router(api_outbound_routes.router, dependencies=api_dependencies)
    app.include_router(api_users.router, dependencies=api_dependencies)
    app.include_router(api_ring_groups.router, dependencies=api_dependencies)
    app.include_router(api_calls.router, dependencies=api_dependencies)
    app.include_router(api_dashboard.router, dependencies=api_dependencies)
    app.include_router(api_dsar.router, dependencies=api_dependencies)
    app.include_router(api_recordings.router, dependencies=api_dependencies)
    app.include_router(api_shares.router, dependencies=api_dependencies)
    app.include_router(api_consents.router, dependencies=api_dependencies)
    app.include_router(api_audit.router, dependencies=api_dependencies)
    app.include_router(api_call_retention.router, dependencies=api_dependencies)
    app.include_router(api_call_commands.router, dependencies=api_dependencies)
    app.include_router(sign_in.router)
    app.include_router(dashboard_page.router)
    app.include_router(calls_page.router)
    app.include_router(call_page.router)
    app.include_router(shares_page.router)
    app.include_router(audit_page.router)
    app.include_router(dsar_page.router)
    app.include_router(admin_pages.router)
    app.include_router(admin_ring_groups_page.router)
    app.include_router(admin_outbound_routes_page.router)
    app.include_router(admin_users_page.router)
    app.include_router(admin_user_edit_page.router)
    app.include_router(account_page.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
