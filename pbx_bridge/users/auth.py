"""The sign-in API the web console and the REST API build on. These names are stable.

Once per process::

    context = await AuthContext.from_settings(settings.auth, settings.privacy)

Console sign-in (the form's POST)::

    try:
        signed_in = await authenticate(sessions, name, password, totp_code, ip,
                                       context=context)
    except SignInRefused as refused:
        # refused.reason: Refusal (INVALID, LOCKED, DISABLED, TOTP_REQUIRED,
        # TOTP_INVALID, TOTP_REPLAYED, TOTP_NOT_ENROLLED, THROTTLED);
        # refused.message: safe to show; refused.locked_until: when LOCKED.
        # TOTP_REQUIRED: the password was right, ask for the code and post all three again.
        ...
    opened = await open_web_session(sessions, signed_in, auth=context.auth, ip=ip,
                                    user_agent=ua, replacing=old_cookie_or_None)
    # cookie value: opened.id (Secure, HttpOnly, SameSite); opened.expires_at

Every request::

    principal = await session_principal(sessions, cookie, auth=context.auth)  # or None
    principal = await token_principal(sessions, bearer)                       # or None
    decision = allowed(principal, Action.RECORDINGS_LISTEN, Resource(extension=call.extension),
                       four_eyes=...)
    # decision.allowed, decision.reason; decision.extensions: the supervisor's extensions
    # to filter a listing by (None: all); decision.needs_approval: a second dpo must approve
    # (approval(requester_user_id, approver, action)). may_see_unmasked(principal).
    # principal.actor: the audit trail's actor for whatever the request does.

Sign-out::

    await end_web_session(sessions, cookie)

The console's ``Accounts`` protocol (pbx_bridge/web/accounts.py) over all of this:
``await UsersAccounts.from_settings(settings, sessions)`` (pbx_bridge/users/console_accounts.py).

``sessions`` is the ``async_sessionmaker`` of the database (storage.database). Sign-ins,
failures, lockouts and sign-outs are audited here; the caller audits what the principal
then does.
"""

from __future__ import annotations

from pbx_bridge.users.permissions import (
    Action,
    Decision,
    Principal,
    Resource,
    allowed,
    approval,
    may_see_unmasked,
    needs_second_approval,
)
from pbx_bridge.users.sign_in import (
    AuthContext,
    Refusal,
    SignedIn,
    SignInRefused,
    authenticate,
)
from pbx_bridge.users.tokens import token_principal
from pbx_bridge.users.web_sessions import (
    OpenedSession,
    end_web_session,
    open_web_session,
    session_principal,
)

__all__ = [
    "Action",
    "AuthContext",
    "Decision",
    "OpenedSession",
    "Principal",
    "Refusal",
    "Resource",
    "SignInRefused",
    "SignedIn",
    "allowed",
    "approval",
    "authenticate",
    "end_web_session",
    "may_see_unmasked",
    "needs_second_approval",
    "open_web_session",
    "session_principal",
    "token_principal",
]
