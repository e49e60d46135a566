"""The console's cookies: the session id, the CSRF nonce, and the language chosen
signed out (the header's switch; signed in, the choice is the user's own).

All are HttpOnly and SameSite=Lax; behind https (``[web] base_url``) they are Secure
and take the ``__Host-`` prefix, so no sub-domain or plain-http page can set them for us
(a planted session id is how session fixation starts).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pbx_bridge.config import WebSettings

LANGUAGE_MAX_AGE_S = 365 * 24 * 3600


class CookieNames:
    def __init__(self, settings: WebSettings) -> None:
        prefix = "__Host-" if settings.secure_cookies else ""
        self.session = f"{prefix}pbxb_session"
        self.csrf = f"{prefix}pbxb_csrf"
        self.language = f"{prefix}pbxb_lang"
        self.secure = settings.secure_cookies

    def session_id(self, request: Request) -> str | None:
        return request.cookies.get(self.session) or None

    def csrf_nonce(self, request: Request) -> str | None:
        return request.cookies.get(self.csrf) or None

    def set_session(self, response: Response, session_id: str) -> None:
        # No max-age: the server-side session decides when it ends (idle and absolute
        # limits); the cookie goes when the browser closes.
        response.set_cookie(
            self.session, session_id, path="/",
            secure=self.secure, httponly=True, samesite="lax",
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(
            self.session, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def set_csrf(self, response: Response, nonce: str) -> None:
        # A browser-session cookie: no max-age, gone when the browser closes.
        response.set_cookie(
            self.csrf, nonce, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def language_choice(self, request: Request) -> str | None:
        return request.cookies.get(self.language) or None

    def set_language(self, response: Response, language: str) -> None:
        # A preference, not a secret: it outlives the browser session (a year).
        response.set_cookie(
            self.language, language, path="/", max_age=LANGUAGE_MAX_AGE_S,
            secure=self.secure, httponly=True, samesite="lax",
        )

    def clear_language(self, response: Response) -> None:
        response.delete_cookie(
            self.language, path="/", secure=self.secure, httponly=True, samesite="lax"
        )
