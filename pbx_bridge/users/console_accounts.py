"""The users module as the web console's ``Accounts`` (pbx_bridge/web/accounts.py).

The console codes against that protocol; this is the one implementation, so wiring it in
is one line in the web server::

    accounts = await UsersAccounts.from_settings(settings, sessions)
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import Settings
from pbx_bridge.users import auth
from pbx_bridge.users.auth import Action, AuthContext, Decision, Principal
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
