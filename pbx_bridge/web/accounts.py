"""Who is asking: what the console needs from the users module, as a protocol.

The console never reads users, passwords or sessions itself; it asks an ``Accounts``
object (``UsersAccounts``, pbx_bridge/users/console_accounts.py), so the rules (argon2,
TOTP, lockout, audit of every sign-in) live in one place and the pages cannot get them
subtly different.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class Principal(Protocol):
    """A signed-in user or an API token's owner."""

    # The user (a token's owner): four eyes compare who asked with who approves.
    @property
    def user_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...

    # The UI language the user chose (tr, en), or None to follow the browser.
    @property
    def language(self) -> str | None: ...

    # Who the audit trail names for what this principal does.
    @property
    def actor(self) -> str: ...


class Grant(Protocol):
    """The answer to "may this principal do that?", with the extensions it covers."""

    @property
    def allowed(self) -> bool: ...

    # When allowed: the extensions whose calls it covers (None: every call).
    @property
    def extensions(self) -> Collection[str] | None: ...

    # Why (allowed or not): what a refusal tells the user.
    @property
    def reason(self) -> str: ...


class SignInRefused(Exception):
    """Sign-in failed; ``reason`` picks the message (never which of name/password was
    wrong)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Reasons the sign-in page tells apart (each has a message in the catalogue).
WRONG_CREDENTIALS = "wrong-credentials"
LOCKED_OUT = "locked-out"
SECOND_FACTOR_NEEDED = "second-factor-needed"
WRONG_SECOND_FACTOR = "wrong-second-factor"
SECOND_FACTOR_REPLAYED = "second-factor-replayed"
SECOND_FACTOR_NOT_SET_UP = "second-factor-not-set-up"
DISABLED = "disabled"
THROTTLED = "throttled"
# Reasons after which the page asks for the authenticator code.
ASK_SECOND_FACTOR = frozenset({SECOND_FACTOR_NEEDED, WRONG_SECOND_FACTOR, SECOND_FACTOR_REPLAYED})


@dataclass(frozen=True)
class SignInAttempt:
    username: str
    password: str
    totp: str | None
    client: str | None
    user_agent: str | None
    # The session cookie the browser brought, if any: it ends (never reused: fixation).
    replacing: str | None


@dataclass(frozen=True)
class WebSession:
    session_id: str
    principal: Principal


class AccountChangeRefused(Exception):
    """A change on "My account" refused; ``reason`` picks the message (``account.<reason>``,
    e.g. ``wrong-password``, ``weak.too_short``), ``params`` fill it in."""

    def __init__(self, reason: str, message: str, params: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.params = params or {}


@dataclass(frozen=True)
class LiveSession:
    """One of the signed-in user's own sessions (``current``: the one asking)."""

    current: bool
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class TotpEnrolment:
    """A new second factor waiting for its first code: the otpauth URI (for the QR code),
    the secret (to type in) and the sealed form of it the confirming form carries."""

    uri: str
    secret: str = field(repr=False)
    sealed: str = field(repr=False)


class Accounts(Protocol):
    async def sign_in(self, attempt: SignInAttempt) -> WebSession:
        """A new server-side session (a new id), or ``SignInRefused``."""
        ...

    async def session_principal(self, session_id: str) -> Principal | None: ...

    async def sign_out(self, session_id: str) -> None: ...

    async def token_principal(self, token: str) -> Principal | None: ...

    async def allowed(self, principal: Principal, action: str) -> Grant: ...

    def needs_approval(self, action: str, *, dsar_type: str | None = None) -> bool:
        """Four eyes: does ``action`` (a DSAR run of this type) wait for a second dpo?"""
        ...

    def approval(self, requester_user_id: str, approver: Principal, action: str) -> Grant:
        """May ``approver`` approve ``action`` that ``requester_user_id`` asked for?"""
        ...
    # "My account": what a signed-in user changes about themselves (never anyone else).
    async def set_language(self, principal: Principal, language: str | None) -> None: ...

    async def change_password(self, principal: Principal, current: str, new: str) -> int:
        """The number of the user's other sessions ended; ``AccountChangeRefused``."""
        ...

    async def totp_enrolled(self, principal: Principal) -> bool: ...

    async def start_totp(self, principal: Principal) -> TotpEnrolment: ...

    async def reopen_totp(self, principal: Principal, sealed: str) -> TotpEnrolment: ...

    async def confirm_totp(self, principal: Principal, sealed: str, code: str) -> None: ...

    async def own_sessions(self, principal: Principal) -> list[LiveSession]: ...

    async def end_other_sessions(self, principal: Principal) -> int: ...
