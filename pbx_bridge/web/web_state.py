"""What every request handler shares, kept on ``app.state.web``: settings, the database,
the users module (as ``Accounts``), the message catalogue, templates, cookie names and
the dashboard's cached numbers, the DSAR desk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from pbx_bridge.calls.search import CursorSigner
from pbx_bridge.config import RetentionSettings, Settings, WebSettings
from pbx_bridge.web.accounts import Accounts
from pbx_bridge.web.call_search_setup import Subjects
from pbx_bridge.web.cookies import CookieNames
from pbx_bridge.web.dashboard_numbers import DashboardNumbers
from pbx_bridge.web.i18n import Catalogue

if TYPE_CHECKING:  # it needs this module's pages and checks: imported for typing only
    from pbx_bridge.web.dsar_desk import DsarDesk

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def make_templates() -> Jinja2Templates:
    """Autoescaping for every template (a caller-ID holding markup shows as text), and
    StrictUndefined so a misspelt variable fails the test instead of rendering blank."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=environment)


@dataclass(frozen=True)
class WebState:
    settings: WebSettings
    secret_key: bytes
    accounts: Accounts
    sessions: async_sessionmaker[AsyncSession]
    catalogue: Catalogue
    cookies: CookieNames
    templates: Jinja2Templates
    cursor_signer: CursorSigner
    subjects: Subjects
    dashboard: DashboardNumbers
    dsar: DsarDesk
    # The whole configuration, for the admin pages (default route, storage, [auth]).
    config: Settings
    # A call's retention change (PUT /calls/{id}/retention) reads the default class here.
    retention: RetentionSettings = field(default_factory=RetentionSettings)


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state
