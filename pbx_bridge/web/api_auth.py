"""Bearer tokens for the API. Cookies are never accepted there, so a page on another site
cannot make the browser call the API with someone's session (no CSRF surface)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pbx_bridge.web.accounts import Principal
from pbx_bridge.web.web_state import web_state

bearer = HTTPBearer(auto_error=False, description="A token from `pbx-bridge tokens create`.")


async def api_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "a bearer token is needed (Authorization: Bearer TOKEN)",
            headers={"WWW-Authenticate": 'Bearer realm="pbx-bridge"'},
        )
    principal = await web_state(request).accounts.token_principal(credentials.credentials)
    if principal is None:
        raise HTTPException(
            401, "the token is unknown, revoked or expired",
            headers={"WWW-Authenticate": 'Bearer realm="pbx-bridge", error="invalid_token"'},
        )
    return principal
