"""The sign-in API the web console and REST API use, against SQLite and PostgreSQL:
passwords, TOTP (and its replay), lockout, throttling, sessions (fixation, idle, sign-out,
disabling), API tokens (revoked, expired, scoped), and what the audit trail keeps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from database_fixtures import db_url, migrated_url, pg_database, sessions
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import AuthSettings, PrivacySettings, Role
from pbx_bridge.users import accounts, tokens
from pbx_bridge.users.auth import (
    Action,
    AuthContext,
    Refusal,
    SignInRefused,
    allowed,
    authenticate,
    end_web_session,
    open_web_session,
    session_principal,
    token_principal,
)
from pbx_bridge.users.models import User, WebSession
from pbx_bridge.users.totp import STEP_S
from storage.audit_trail import list_entries, verify
from storage.models import AuditEntry, utcnow

__all__ = ["db_url", "migrated_url", "pg_database", "sessions"]  # fixtures

PASSWORD = "correct horse battery"
# Cheap argon2 for tests: the cost is the library's business, the rules are ours.
FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def context(tmp_path: Path) -> AuthContext:
    auth = AuthSettings(**FAST, max_failures=3, lockout_minutes=10, ip_max_failures=50)
    return await AuthContext.from_settings(
        auth, PrivacySettings(subject_key_file=tmp_path / "subject.key")
    )


async def _add(
    sessions: Sessions,
    context: AuthContext,
    name: str = "ayse",
    role: Role = Role.DPO,
    **kwargs: object,
) -> accounts.UserInfo:
    async with sessions() as session:
        user = await accounts.add_user(
            session,
            name=name,
            role=role,
            password=PASSWORD,
            auth=context.auth,
            actor="cli:root",
            default_target="100",
            **kwargs,  # type: ignore[arg-type]
        )
        await session.commit()
    return user


async def _enrol(sessions: Sessions, context: AuthContext, name: str = "ayse") -> str:
    async with sessions() as session:
        uri = await accounts.enrol_totp(
            session, name, sealer=context.sealer, issuer="pbx-bridge", actor="cli:root"
        )
        await session.commit()
    secret = pyotp.parse_uri(uri).secret
    assert isinstance(secret, str)
    return secret


async def _entries(sessions: Sessions) -> list[AuditEntry]:
    async with sessions() as session:
        return list(reversed(await list_entries(session, limit=None)))


async def _refusal(
    sessions: Sessions,
    context: AuthContext,
    name: str,
    password: str,
    code: str | None = None,
    *,
    now: datetime | None = None,
    ip: str = "192.0.2.7",
) -> SignInRefused:
    with pytest.raises(SignInRefused) as caught:
        await authenticate(sessions, name, password, code, ip, context=context, now=now)
    return caught.value


async def test_right_password_signs_in_and_is_audited(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context, "Ayse", Role.DPO)
    signed = await authenticate(sessions, "AYSE", PASSWORD, None, "192.0.2.7", context=context)
    assert signed.principal.name == "ayse"
    assert signed.principal.role is Role.DPO
    assert signed.principal.actor == "user:ayse"
    last = (await _entries(sessions))[-1]
    assert (last.action, last.actor, last.target) == ("auth.signed_in", "user:ayse", "user:ayse")
    assert json.loads(last.details)["ip"] == "192.0.2.7"


async def test_wrong_password_and_unknown_name_read_alike_and_keep_no_secret(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    wrong = await _refusal(sessions, context, "ayse", "not the password at all")
    unknown = await _refusal(sessions, context, "correct horse battery", PASSWORD)
    assert wrong.reason is unknown.reason is Refusal.INVALID
    assert wrong.message == unknown.message == "wrong user name or password"
    failed = [e for e in await _entries(sessions) if e.action == "auth.sign_in_failed"]
    assert [e.target for e in failed] == ["user:ayse", "user:unknown"]
    everything = " ".join(f"{e.actor} {e.target} {e.details}" for e in await _entries(sessions))
    assert "not the password" not in everything
    assert "horse" not in everything  # a password typed as the name is not kept either


async def test_failures_in_a_row_lock_the_account_until_the_lock_ends(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    t0 = utcnow()
    for _ in range(2):
        assert (await _refusal(sessions, context, "ayse", "wrong password!", now=t0)).reason is (
            Refusal.INVALID
        )
    third = await _refusal(sessions, context, "ayse", "wrong password!", now=t0)
    assert third.reason is Refusal.LOCKED
    assert third.locked_until == t0 + timedelta(minutes=10)
    # Locked: even the right password is refused, unchecked.
    locked = await _refusal(sessions, context, "ayse", PASSWORD, now=t0 + timedelta(minutes=9))
    assert locked.reason is Refusal.LOCKED
    signed = await authenticate(
        sessions, "ayse", PASSWORD, None, "192.0.2.7", context=context,
        now=t0 + timedelta(minutes=10, seconds=1),
    )
    assert signed.principal.name == "ayse"
    actions = [e.action for e in await _entries(sessions)]
    assert actions.count("auth.locked") == 1
    assert actions.count("auth.sign_in_failed") == 4
    assert actions[-1] == "auth.signed_in"
    async with sessions() as session:
        user = await accounts.get_user(session, "ayse")
        assert (user.failed_attempts, user.locked_until) == (0, None)


async def test_a_success_resets_the_count_of_failures(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    for _ in range(2):
        await _refusal(sessions, context, "ayse", "wrong password!")
    await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)
    for _ in range(2):
        assert (await _refusal(sessions, context, "ayse", "wrong password!")).reason is (
            Refusal.INVALID
        )


async def test_one_address_spraying_names_is_throttled(
    sessions: Sessions, tmp_path: Path
) -> None:
    context = await AuthContext.from_settings(
        AuthSettings(**FAST, ip_max_failures=3, ip_window_minutes=5),
        PrivacySettings(subject_key_file=tmp_path / "subject.key"),
    )
    await _add(sessions, context)
    t0 = utcnow()
    for name in ("a1", "a2", "a3"):
        assert (await _refusal(sessions, context, name, PASSWORD, now=t0)).reason is (
            Refusal.INVALID
        )
    blocked = await _refusal(sessions, context, "ayse", PASSWORD, now=t0)
    assert blocked.reason is Refusal.THROTTLED
    # Another address is not held back, and the window passes.
    await authenticate(sessions, "ayse", PASSWORD, None, "198.51.100.1", context=context, now=t0)
    later = t0 + timedelta(minutes=5, seconds=1)
    await authenticate(sessions, "ayse", PASSWORD, None, "192.0.2.7", context=context, now=later)
    assert [e.action for e in await _entries(sessions)].count("auth.address_throttled") == 1


async def test_disabled_user_cannot_sign_in_and_their_sessions_end(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    signed = await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)
    opened = await open_web_session(sessions, signed, auth=context.auth, ip=None, user_agent=None)
    assert await session_principal(sessions, opened.id, auth=context.auth) is not None
    async with sessions() as session:
        await accounts.set_disabled(session, "ayse", disabled=True, actor="cli:root")
        await session.commit()
    assert await session_principal(sessions, opened.id, auth=context.auth) is None
    refused = await _refusal(sessions, context, "ayse", PASSWORD)
    assert refused.reason is Refusal.DISABLED
    async with sessions() as session:
        await accounts.set_disabled(session, "ayse", disabled=False, actor="cli:root")
        await session.commit()
    # Enabling does not bring the old session back.
    assert await session_principal(sessions, opened.id, auth=context.auth) is None
    await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)


async def test_totp_is_asked_for_checked_and_never_accepted_twice(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    secret = await _enrol(sessions, context)
    now = utcnow()
    code = pyotp.TOTP(secret).at(now)
    missing = await _refusal(sessions, context, "ayse", PASSWORD, None, now=now)
    assert missing.reason is Refusal.TOTP_REQUIRED
    wrong = "000000" if code != "000000" else "111111"
    assert (await _refusal(sessions, context, "ayse", PASSWORD, wrong, now=now)).reason is (
        Refusal.TOTP_INVALID
    )
    signed = await authenticate(sessions, "ayse", PASSWORD, code, None, context=context, now=now)
    assert signed.principal.name == "ayse"
    replayed = await _refusal(sessions, context, "ayse", PASSWORD, code, now=now)
    assert replayed.reason is Refusal.TOTP_REPLAYED
    # The previous step's code is older than the one used: a replay too.
    previous = pyotp.TOTP(secret).at(now - timedelta(seconds=STEP_S))
    if previous != code:
        late = await _refusal(sessions, context, "ayse", PASSWORD, previous, now=now)
        assert late.reason is Refusal.TOTP_REPLAYED
    # The next step's code works once its step comes.
    following = now + timedelta(seconds=STEP_S)
    await authenticate(
        sessions, "ayse", PASSWORD, pyotp.TOTP(secret).at(following), None,
        context=context, now=following,
    )
    everything = " ".join(e.details for e in await _entries(sessions))
    assert code not in everything and secret not in everything
    async with sessions() as session:
        stored = await session.scalar(select(User.totp_secret).where(User.name == "ayse"))
    assert stored is not None and secret not in stored


async def test_a_role_can_require_totp_before_anyone_enrolled(
    sessions: Sessions, tmp_path: Path
) -> None:
    context = await AuthContext.from_settings(
        AuthSettings(**FAST, totp_required_roles=(Role.ADMIN,)),
        PrivacySettings(subject_key_file=tmp_path / "subject.key"),
    )
    await _add(sessions, context, "root", Role.ADMIN)
    await _add(sessions, context, "sara", Role.AUDITOR, require_totp=True)
    await _add(sessions, context, "ayse", Role.DPO)
    for name in ("root", "sara"):
        refused = await _refusal(sessions, context, name, PASSWORD)
        assert refused.reason is Refusal.TOTP_NOT_ENROLLED
        assert "pbx-bridge users totp" in refused.message
    await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)


async def test_raising_the_argon2_cost_rehashes_at_the_next_sign_in(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    async with sessions() as session:
        before = await session.scalar(select(User.password_hash).where(User.name == "ayse"))
    stronger = AuthContext(
        auth=context.auth.model_copy(update={"argon2_time_cost": 2}),
        sealer=context.sealer,
        throttle=context.throttle,
    )
    await authenticate(sessions, "ayse", PASSWORD, None, None, context=stronger)
    async with sessions() as session:
        after = await session.scalar(select(User.password_hash).where(User.name == "ayse"))
    assert before is not None and after is not None
    assert "t=1" in before and "t=2" in after
    await authenticate(sessions, "ayse", PASSWORD, None, None, context=stronger)


async def test_session_fixation_a_planted_id_never_becomes_a_session(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    planted = "attacker-chosen-id-before-sign-in"
    signed = await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)
    opened = await open_web_session(
        sessions, signed, auth=context.auth, ip="192.0.2.7", user_agent="Firefox",
        replacing=planted,
    )
    assert opened.id != planted and len(opened.id) >= 40
    assert await session_principal(sessions, planted, auth=context.auth) is None
    principal = await session_principal(sessions, opened.id, auth=context.auth)
    assert principal is not None and principal.name == "ayse"
    # Each sign-in gets a new id; only its hash is stored.
    again = await open_web_session(sessions, signed, auth=context.auth, ip=None, user_agent=None)
    assert again.id != opened.id
    async with sessions() as session:
        stored = set((await session.scalars(select(WebSession.id_hash))).all())
    assert opened.id not in stored and again.id not in stored and len(stored) == 2


async def test_ended_sessions_are_cleared_at_the_next_sign_in(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    t0 = utcnow()
    signed = await authenticate(sessions, "ayse", PASSWORD, None, None, context=context, now=t0)
    for _ in range(3):
        await open_web_session(sessions, signed, auth=context.auth, ip=None, user_agent=None,
                               now=t0)
    later = t0 + timedelta(hours=12)
    await open_web_session(sessions, signed, auth=context.auth, ip=None, user_agent=None,
                           now=later)
    async with sessions() as session:
        left = list((await session.scalars(select(WebSession.created_at))).all())
    assert left == [later]


async def test_a_replaced_pre_sign_in_session_ends(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    signed = await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)
    first = await open_web_session(sessions, signed, auth=context.auth, ip=None, user_agent=None)
    second = await open_web_session(
        sessions, signed, auth=context.auth, ip=None, user_agent=None, replacing=first.id
    )
    assert await session_principal(sessions, first.id, auth=context.auth) is None
    assert await session_principal(sessions, second.id, auth=context.auth) is not None


async def test_sessions_end_when_idle_at_their_limit_and_on_sign_out(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    t0 = utcnow()
    signed = await authenticate(sessions, "ayse", PASSWORD, None, None, context=context, now=t0)
    opened = await open_web_session(
        sessions, signed, auth=context.auth, ip=None, user_agent=None, now=t0
    )
    assert opened.expires_at == t0 + timedelta(hours=12)
    # Used every 20 minutes, it lives on (idle limit 30) until its 12 hours are up.
    at = t0
    while at + timedelta(minutes=20) < opened.expires_at:
        at += timedelta(minutes=20)
        assert await session_principal(sessions, opened.id, auth=context.auth, now=at)
    assert await session_principal(
        sessions, opened.id, auth=context.auth, now=opened.expires_at
    ) is None
    idle = await open_web_session(
        sessions, signed, auth=context.auth, ip=None, user_agent=None, now=t0
    )
    assert await session_principal(
        sessions, idle.id, auth=context.auth, now=t0 + timedelta(minutes=30)
    ) is None
    live = await open_web_session(sessions, signed, auth=context.auth, ip=None, user_agent=None)
    assert await end_web_session(sessions, live.id)
    assert await session_principal(sessions, live.id, auth=context.auth) is None
    assert not await end_web_session(sessions, live.id)
    assert (await _entries(sessions))[-1].action == "auth.signed_out"


async def test_a_password_reset_ends_sessions(sessions: Sessions, context: AuthContext) -> None:
    await _add(sessions, context)
    signed = await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)
    opened = await open_web_session(sessions, signed, auth=context.auth, ip=None, user_agent=None)
    async with sessions() as session:
        await accounts.reset_password(
            session, "ayse", "another long passphrase", auth=context.auth, actor="cli:root"
        )
        await session.commit()
    assert await session_principal(sessions, opened.id, auth=context.auth) is None
    assert (await _refusal(sessions, context, "ayse", PASSWORD)).reason is Refusal.INVALID
    await authenticate(sessions, "ayse", "another long passphrase", None, None, context=context)


async def test_tokens_speak_for_their_user_within_their_scopes_until_revoked(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context, "sup", Role.SUPERVISOR, extensions=["100"])
    async with sessions() as session:
        info, bearer = await tokens.create_token(
            session, user_name="sup", scopes=["calls.read"], days=30, actor="cli:root"
        )
        await session.commit()
    principal = await token_principal(sessions, bearer)
    assert principal is not None
    assert principal.actor == f"token:{info.id}(sup)"
    assert allowed(principal, Action.CALLS_READ).allowed
    assert not allowed(principal, Action.RECORDINGS_LISTEN).allowed  # role has it, scope not
    tampered = bearer[:-1] + ("x" if bearer[-1] != "x" else "y")
    assert await token_principal(sessions, tampered) is None
    assert await token_principal(sessions, "pbxb_nonsense") is None
    async with sessions() as session:
        await tokens.revoke_token(session, info.id, actor="cli:root")
        await session.commit()
    assert await token_principal(sessions, bearer) is None
    actions = [e.action for e in await _entries(sessions)]
    assert actions[-2:] == ["token.created", "token.revoked"]
    assert bearer.split(".", 1)[1] not in " ".join(e.details for e in await _entries(sessions))


async def test_expired_token_and_disabled_users_token_are_refused(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context)
    t0 = utcnow()
    async with sessions() as session:
        _, bearer = await tokens.create_token(
            session, user_name="ayse", scopes=["dsar.*"], days=1, actor="cli:root", now=t0
        )
        await session.commit()
    assert await token_principal(sessions, bearer, now=t0 + timedelta(hours=23)) is not None
    assert await token_principal(sessions, bearer, now=t0 + timedelta(days=1)) is None
    async with sessions() as session:
        await accounts.set_disabled(session, "ayse", disabled=True, actor="cli:root")
        await session.commit()
    assert await token_principal(sessions, bearer, now=t0 + timedelta(hours=1)) is None


async def test_a_token_cannot_reach_beyond_its_role(
    sessions: Sessions, context: AuthContext
) -> None:
    await _add(sessions, context, "root", Role.ADMIN)
    async with sessions() as session:
        with pytest.raises(ValueError, match="outside role admin"):
            await tokens.create_token(
                session, user_name="root", scopes=["recordings.listen"], days=1, actor="cli:root"
            )
        with pytest.raises(ValueError, match="unknown scope"):
            await tokens.create_token(
                session, user_name="root", scopes=["everything"], days=1, actor="cli:root"
            )
        _, bearer = await tokens.create_token(
            session, user_name="root", scopes=["*"], days=1, actor="cli:root"
        )
        await session.commit()
    principal = await token_principal(sessions, bearer)
    assert principal is not None
    assert allowed(principal, Action.ROUTES_WRITE).allowed
    assert not allowed(principal, Action.RECORDINGS_LISTEN).allowed  # "*" is the role, no more


async def test_the_chain_holds_after_all_of_it(sessions: Sessions, context: AuthContext) -> None:
    await _add(sessions, context)
    await _refusal(sessions, context, "ayse", "wrong password!")
    await authenticate(sessions, "ayse", PASSWORD, None, None, context=context)
    async with sessions() as session:
        report = await verify(session)
    assert report.ok, report.message
