"""The users module as the web console's ``Accounts`` (pbx_bridge/web/accounts.py).

The console codes against that protocol; this is the one implementation, so wiring it in
is one line in the web server::

    accounts = await UsersAccounts.from_settings(settings, sessions)
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import Language, Settings
from pbx_bridge.users import auth, self_service
from pbx_bridge.users.auth import Action, AuthContext, Decision, Principal
from pbx_bridge.users.models import User
from pbx_bridge.users.passwords import WeakPassword
from pbx_bridge.web import accounts as console

_ACTIONS = frozenset(a.value for a in Action)


class UsersAccounts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        context: AuthContext,
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
        context = await AuthContext.from_settings(settings.auth, settings.privacy)
        return cls(sessions, context, four_eyes=settings.web.four_eyes)

    async def sign_in(self, attempt: console.SignInAttempt) -> console.WebSession:
        try:
            signed_in = await auth.authenticate(
                self._sessions,
                attempt.username,
                attempt.password,
                attempt.totp,
                attempt.client,
                context=self._context,
            )
        except auth.SignInRefused as refused:
            # The values of Refusal are the console's reasons.
            raise console.SignInRefused(refused.reason.value) from None
        opened = await auth.open_web_session(
            self._sessions,
            signed_in,
            auth=self._context.auth,
            ip=attempt.client,
            user_agent=attempt.user_agent,
            replacing=attempt.replacing,
        )
        return console.WebSession(opened.id, signed_in.principal)

    async def session_principal(self, session_id: str) -> Principal | None:
        return await auth.session_principal(self._sessions, session_id, auth=self._context.auth)

    async def sign_out(self, session_id: str) -> None:
        await auth.end_web_session(self._sessions, session_id)

    async def token_principal(self, token: str) -> Principal | None:
        return await auth.token_principal(self._sessions, token)

    async def allowed(self, principal: console.Principal, action: str) -> Decision:
        known = _known(principal, action)
        if isinstance(known, Decision):
            return known
        return auth.allowed(known[0], known[1], four_eyes=self._four_eyes)

    def needs_approval(self, action: str, *, dsar_type: str | None = None) -> bool:
        if action not in _ACTIONS:
            return False
        return auth.needs_second_approval(
            Action(action), four_eyes=self._four_eyes, dsar_type=dsar_type
        )

    def approval(
        self, requester_user_id: str, approver: console.Principal, action: str
    ) -> Decision:
        known = _known(approver, action)
        if isinstance(known, Decision):
            return known
        return auth.approval(requester_user_id, known[0], known[1])


    # -- "My account" ------------------------------------------------------------------

    @staticmethod
    def _own(principal: console.Principal) -> tuple[str, str]:
        """The user's id and session id: only a console session of this module may
        change its own account (a token may not)."""
        if not isinstance(principal, Principal) or principal.session_id is None:
            raise console.AccountChangeRefused(
                "not-a-session", "only a signed-in console session may change its account"
            )
        return principal.user_id, principal.session_id

    async def set_language(self, principal: console.Principal, language: str | None) -> None:
        user_id, _ = self._own(principal)
        try:
            chosen = None if language is None else Language(language)
        except ValueError:
            raise console.AccountChangeRefused(
                "unknown-language", f"unknown language {language!r}"
            ) from None
        await self_service.set_language(self._sessions, user_id, chosen)

    async def change_password(
        self, principal: console.Principal, current: str, new: str
    ) -> int:
        user_id, session_id = self._own(principal)
        try:
            return await self_service.change_password(
                self._sessions, user_id, session_id, current, new, auth=self._context.auth
            )
        except WeakPassword as weak:
            raise console.AccountChangeRefused(f"weak.{weak.rule}", str(weak),
                                               weak.params) from None

    async def totp_enrolled(self, principal: console.Principal) -> bool:
        user_id, _ = self._own(principal)
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            return user is not None and user.totp_secret is not None

    async def start_totp(self, principal: console.Principal) -> console.TotpEnrolment:
        user_id, _ = self._own(principal)
        return await self_service.start_totp(
            self._sessions, user_id, sealer=self._context.sealer,
            issuer=self._context.auth.totp_issuer,
        )

    async def reopen_totp(
        self, principal: console.Principal, sealed: str
    ) -> console.TotpEnrolment:
        user_id, _ = self._own(principal)
        return self_service.reopen_totp(
            user_id, principal.name, sealed, sealer=self._context.sealer,
            issuer=self._context.auth.totp_issuer,
        )

    async def confirm_totp(self, principal: console.Principal, sealed: str, code: str) -> None:
        user_id, _ = self._own(principal)
        await self_service.confirm_totp(
            self._sessions, user_id, sealed, code, sealer=self._context.sealer
        )

    async def own_sessions(self, principal: console.Principal) -> list[console.LiveSession]:
        user_id, session_id = self._own(principal)
        return await self_service.live_sessions(
            self._sessions, user_id, session_id, auth=self._context.auth
        )

    async def end_other_sessions(self, principal: console.Principal) -> int:
        user_id, session_id = self._own(principal)
        return await self_service.end_other_sessions(self._sessions, user_id, session_id)


def _known(principal: console.Principal, action: str) -> tuple[Principal, Action] | Decision:
    """The users module's principal and action, or the refusal of a foreign one."""
    if not isinstance(principal, Principal):
        return Decision(False, "not a principal of the users module")
    if action not in _ACTIONS:
        return Decision(False, f"unknown action {action!r}")
    return principal, Action(action)


def _conforms(accounts: UsersAccounts) -> console.Accounts:
    """mypy checks here that UsersAccounts is what the console expects."""
    return accounts
