"""Who is looking at a page and in which language, and the CSRF token their forms carry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from pbx_bridge.calls.dashboard import DsarStats
from pbx_bridge.web import csrf
from pbx_bridge.web.accounts import Accounts, Principal
from pbx_bridge.web.permissions import (
    AUDIT_READ,
    CALLS_READ,
    DASHBOARD_READ,
    DSAR_READ,
    EXTENSIONS_READ,
    RETENTION_READ,
    ROUTES_READ,
    SHARES_READ,
    STORAGE_STATUS,
    USERS_READ,
)
from pbx_bridge.web.web_state import WebState, web_state


class SignInNeeded(Exception):
    """The page needs a signed-in user; the handler sends the browser to sign in."""


class Forbidden(Exception):
    """Signed in, but the role does not allow this."""


class CsrfRefused(Exception):
    """An unsafe request without this console's token for this browser and session."""


@dataclass(frozen=True)
class Viewer:
    principal: Principal | None
    session_id: str | None
    language: str
    t: Callable[..., str]
    csrf_token: str
    # A nonce made for this request (the browser had none): set as a cookie on the answer.
    new_nonce: str | None
    # The requests overdue and due soon, for the badge of every page (None: the role may
    # not see the register).
    dsar_badge: DsarStats | None = None
    # The header's links this principal may follow (pages their role would refuse are
    # not offered), in order.
    nav: tuple[str, ...] = ()


# The header's pages, in order, and the action each needs.
NAV = (("dashboard", DASHBOARD_READ), ("calls", CALLS_READ), ("shares", SHARES_READ),
       ("audit", AUDIT_READ), ("dsar", DSAR_READ),
       # The admin's pages (the message key is nav.admin_routes, ...).
       ("admin/routes", ROUTES_READ), ("admin/ring-groups", ROUTES_READ),
       ("admin/outbound-routes", ROUTES_READ),
       ("admin/extensions", EXTENSIONS_READ),
       ("admin/retention", RETENTION_READ), ("admin/users", USERS_READ),
       ("admin/tokens", USERS_READ), ("admin/storage", STORAGE_STATUS))


async def nav_of(accounts: Accounts, principal: Principal) -> tuple[str, ...]:
    return tuple([page for page, action in NAV
                  if (await accounts.allowed(principal, action)).allowed])


async def landing_of(accounts: Accounts, principal: Principal) -> str:
    """Where a principal starts: the dashboard, else (an auditor) the audit trail."""
    pages = await nav_of(accounts, principal)
    return f"/{pages[0]}" if pages else "/dashboard"


async def viewer_of(request: Request) -> Viewer:
    cached: Viewer | None = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    state = web_state(request)
    session_id = state.cookies.session_id(request)
    principal = None
    if session_id is not None:
        principal = await state.accounts.session_principal(session_id)
    badge = None if principal is None else await state.dashboard.badge(principal)
    nav = () if principal is None else await nav_of(state.accounts, principal)
    viewer = _viewer(request, state, principal, session_id, badge, nav)
    request.state.viewer = viewer
    return viewer


def _viewer(
    request: Request,
    state: WebState,
    principal: Principal | None,
    session_id: str | None,
    badge: DsarStats | None,
    nav: tuple[str, ...] = (),
) -> Viewer:
    nonce = state.cookies.csrf_nonce(request)
    new_nonce = None
    if nonce is None:
        nonce = new_nonce = csrf.new_nonce()
    language = state.catalogue.choose(
        principal.language if principal else None, request.headers.get("accept-language"),
        state.cookies.language_choice(request),
    )
    return Viewer(
        principal=principal,
        session_id=session_id,
        language=language,
        t=state.catalogue.translator(language),
        csrf_token=csrf.token_for(state.secret_key, nonce, session_id),
        new_nonce=new_nonce,
        dsar_badge=badge,
        nav=nav,
    )


def anonymous_viewer(request: Request) -> Viewer:
    """A viewer nobody is known as: for the pages answered when the sessions cannot be
    read (the database is away)."""
    return _viewer(request, web_state(request), None, None, None)


async def signed_in(request: Request) -> Viewer:
    """Dependency of every page but sign-in and the error pages."""
    viewer = await viewer_of(request)
    if viewer.principal is None:
        raise SignInNeeded
    return viewer


async def csrf_checked(request: Request) -> None:
    """Dependency of the pages' router: every POST/PUT/PATCH/DELETE carries the token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    state = web_state(request)
    form = await request.form()
    token = form.get(csrf.FIELD)
    if not csrf.token_valid(
        state.secret_key,
        state.cookies.csrf_nonce(request),
        state.cookies.session_id(request),
        token if isinstance(token, str) else None,
    ):
        raise CsrfRefused
