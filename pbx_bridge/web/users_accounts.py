"""The console's ``Accounts`` on the users module (``pbx_bridge.users.auth``): sign-in
with argon2, TOTP and lockout, server-side sessions, tokens and the role rules, each
decided and audited there; this only translates."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import Settings
from pbx_bridge.users import auth
from pbx_bridge.web import accounts
from pbx_bridge.web.accounts import Grant, Principal, SignInRefused, WebSession

# What the users module says → which message the sign-in page shows.
REASONS = {
    auth.Refusal.INVALID: accounts.WRONG_CREDENTIALS,
    auth.Refusal.LOCKED: accounts.LOCKED_OUT,
    auth.Refusal.DISABLED: accounts.DISABLED,
    auth.Refusal.TOTP_REQUIRED: accounts.SECOND_FACTOR_NEEDED,
    auth.Refusal.TOTP_INVALID: accounts.WRONG_SECOND_FACTOR,
    auth.Refusal.TOTP_REPLAYED: accounts.SECOND_FACTOR_REPLAYED,
    auth.Refusal.TOTP_NOT_ENROLLED: accounts.SECOND_FACTOR_NOT_SET_UP,
    auth.Refusal.THROTTLED: accounts.THROTTLED,
}


class UsersAccounts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        context: auth.AuthContext,
        *,
        four_eyes: bool,
    ) -> None:
        self._sessions = sessions
        self._context = context
        self._four_eyes = four_eyes

    @classmethod
    async def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> UsersAccounts:
        context = await auth.AuthContext.from_settings(settings.auth, settings.privacy)
        return cls(sessions, context, four_eyes=settings.web.four_eyes)

    async def sign_in(self, attempt: accounts.SignInAttempt) -> WebSession:
        try:
            signed_in = await auth.authenticate(
                self._sessions, attempt.username, attempt.password, attempt.totp,
                attempt.client, context=self._context,
            )
        except auth.SignInRefused as refused:
            raise SignInRefused(REASONS[refused.reason]) from refused
        opened = await auth.open_web_session(
            self._sessions, signed_in, auth=self._context.auth, ip=attempt.client,
            user_agent=attempt.user_agent, replacing=attempt.replacing,
        )
        return WebSession(opened.id, signed_in.principal)

    async def session_principal(self, session_id: str) -> Principal | None:
        return await auth.session_principal(self._sessions, session_id, auth=self._context.auth)

    async def sign_out(self, session_id: str) -> None:
        await auth.end_web_session(self._sessions, session_id)

    async def token_principal(self, token: str) -> Principal | None:
        return await auth.token_principal(self._sessions, token)

    async def allowed(self, principal: Principal, action: str) -> Grant:
        assert isinstance(principal, auth.Principal), principal  # only ours reach here
        return auth.allowed(principal, auth.Action(action), four_eyes=self._four_eyes)
