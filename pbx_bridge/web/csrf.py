"""CSRF tokens: a signed double submit, bound to the session.

A random nonce lives in an HttpOnly cookie; every form carries
HMAC(secret_key, nonce, session id). A forged form from another site cannot read the
cookie, so it cannot compute the token; binding it to the session id means a token seen
before sign-in is worthless after it (the nonce is renewed at sign-in as well). No
server-side state, so the sign-in form is protected before anyone has a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

FIELD = "csrf_token"
NONCE_BYTES = 32


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def token_for(secret_key: bytes, nonce: str, session_id: str | None) -> str:
    mac = hmac.new(secret_key, b"csrf\0", hashlib.sha256)
    mac.update(nonce.encode())
    mac.update(b"\0")
    mac.update((session_id or "").encode())
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def token_valid(
    secret_key: bytes, nonce: str | None, session_id: str | None, token: str | None
) -> bool:
    if not nonce or not token:
        return False
    return hmac.compare_digest(token_for(secret_key, nonce, session_id), token)
