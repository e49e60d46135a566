"""``pbx-bridge users`` and ``pbx-bridge tokens`` against SQLite and PostgreSQL: what is
stored, what the admin sees, the audit entries, and a clear error for each bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyotp
import pytest
from cli_support import clean_pbx_env, cli  # noqa: F401  (clean_pbx_env: autouse fixture)
from database_fixtures import db_url, pg_database
from sqlalchemy import select

from pbx_bridge.config import load_settings
from pbx_bridge.users.models import User
from pbx_bridge.users.sign_in import AuthContext, authenticate
from pbx_bridge.users.tokens import token_principal
from storage.audit_trail import list_entries
from storage.database import make_engine, make_session_factory
from storage.models import AuditEntry

__all__ = ["db_url", "pg_database"]  # fixtures

PASSWORD = "a long enough passphrase"


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[privacy]\nsubject_key_file = "{tmp_path}/subject.key"\n'
        '[default_route]\ntarget = "100"\n'
        "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 8\nargon2_parallelism = 1\n"
    )
    result = cli(path, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert cli(path, "ext", "set", "101", "--recording", "always").exit_code == 0
    return path


def _add(config: Path, name: str, *args: str, password: str = PASSWORD) -> None:
    result = cli(config, "users", "add", name, *args, "--password-stdin", input=password + "\n")
    assert result.exit_code == 0, result.output


def _audit(config: Path) -> list[AuditEntry]:
    async def fetch() -> list[AuditEntry]:
        engine = make_engine(load_settings(config).database.url)
        try:
            async with make_session_factory(engine)() as session:
                return list(reversed(await list_entries(session, limit=None)))
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


def test_users_add_and_list(config: Path) -> None:
    result = cli(
        config, "users", "add", "Ayse", "--role", "supervisor", "--extensions", "100,101",
        "--unmask", "--language", "en", "--password-stdin", input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "added user ayse: role supervisor, extensions 100,101, unmask, language en"
    )
    _add(config, "root", "--role", "admin", "--require-totp")
    listed = cli(config, "users", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == [
        "NAME", "ROLE", "EXTENSIONS", "UNMASK", "LANG", "TOTP", "STATE", "LAST", "SIGN-IN"
    ]
    assert lines[1].split()[:6] == ["ayse", "supervisor", "100,101", "yes", "en", "not"]
    assert "(required)" in lines[2]
    data = json.loads(cli(config, "users", "list", "--json").output)
    assert [u["name"] for u in data] == ["ayse", "root"]
    assert data[0]["extensions"] == ["100", "101"] and data[0]["unmask"] is True
    assert "password_hash" not in data[0] and "totp_secret" not in data[0]
    created = [e for e in _audit(config) if e.action == "user.created"]
    assert [e.target for e in created] == ["user:ayse", "user:root"]
    assert PASSWORD not in " ".join(e.details for e in _audit(config))


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "boss"], PASSWORD, "'boss' is not one of"),
        (["--role", "supervisor", "--extensions", "100,555"], PASSWORD,
         "unknown extension(s) 555"),
        (["--role", "supervisor"], PASSWORD, "a supervisor needs --extensions"),
        (["--role", "dpo", "--extensions", "100"], PASSWORD, "only supervisors have"),
        (["--role", "admin", "--unmask"], PASSWORD, "--unmask is a supervisor's grant"),
        (["--role", "dpo"], "short", "password too short: 5 characters, at least 12"),
        (["--role", "dpo"], "aaaaaaaaaaaaaaaa", "at least 4 different characters"),
        (["--role", "dpo"], "", "no password on stdin"),
    ],
)
def test_users_add_refuses_bad_input_clearly(
    config: Path, args: list[str], stdin: str, message: str
) -> None:
    result = cli(config, "users", "add", "ayse", *args, "--password-stdin", input=stdin + "\n")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_users_add_refuses_a_duplicate_and_a_bad_name(config: Path) -> None:
    _add(config, "ayse", "--role", "dpo")
    again = cli(
        config, "users", "add", "AYSE", "--role", "auditor", "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert again.exit_code == 2 and "user 'ayse' already exists" in again.output
    bad = cli(
        config, "users", "add", "bad name", "--role", "auditor", "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert bad.exit_code == 2 and "invalid user name 'bad name'" in bad.output
    assert cli(config, "users", "disable", "nobody").output.strip() == (
        "error: no user 'nobody' (see `pbx-bridge users list`)"
    )


def test_users_set_changes_what_a_user_is_audited(config: Path) -> None:
    _add(config, "selim", "--role", "supervisor", "--extensions", "100")
    changed = cli(config, "users", "set", "selim", "--extensions", "100,101", "--unmask")
    assert changed.exit_code == 0, changed.output
    assert changed.output.strip() == (
        "user selim: role supervisor, extensions 100,101, unmask, language (browser's)"
    )
    unknown = cli(config, "users", "set", "selim", "--extensions", "999")
    assert unknown.exit_code == 2 and "unknown extension(s) 999" in unknown.output
    promoted = cli(config, "users", "set", "selim", "--role", "dpo", "--require-totp")
    assert promoted.output.strip() == "user selim: role dpo, language (browser's), TOTP required"
    back = cli(config, "users", "set", "selim", "--role", "supervisor")
    assert back.exit_code == 2 and "a supervisor needs --extensions" in back.output
    entries = [e for e in _audit(config) if e.action == "user.changed"]
    assert [json.loads(e.details)["changes"] for e in entries] == [
        {"extensions": {"from": ["100"], "to": ["100", "101"]},
         "unmask": {"from": False, "to": True}},
        {"role": {"from": "supervisor", "to": "dpo"}, "extensions": {"from": ["100", "101"],
         "to": []}, "unmask": {"from": True, "to": False},
         "totp_required": {"from": False, "to": True}},
    ]


def test_password_prompt_asks_twice(config: Path) -> None:
    result = cli(
        config, "users", "add", "ayse", "--role", "dpo", input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output


def _sign_in(config: Path, name: str, password: str, code: str | None = None) -> str:
    """The service API on the config's database: the principal's name, or the refusal."""
    from pbx_bridge.users.sign_in import SignInRefused

    async def run() -> str:
        settings = load_settings(config)
        context = await AuthContext.from_settings(settings.auth, settings.privacy)
        engine = make_engine(settings.database.url)
        try:
            signed = await authenticate(
                make_session_factory(engine), name, password, code, None, context=context
            )
            return signed.principal.name
        except SignInRefused as refused:
            return refused.reason.value
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_disable_enable_and_reset_password(config: Path) -> None:
    _add(config, "ayse", "--role", "dpo")
    assert _sign_in(config, "ayse", PASSWORD) == "ayse"
    assert cli(config, "users", "list").output.splitlines()[1].split()[7] == "active"
    assert cli(config, "users", "disable", "ayse").output.strip() == "user ayse disabled"
    assert cli(config, "users", "list").output.splitlines()[1].split()[7] == "disabled"
    assert _sign_in(config, "ayse", PASSWORD) == "disabled"
    assert cli(config, "users", "enable", "ayse").output.strip() == "user ayse enabled"
    reset = cli(
        config, "users", "reset-password", "ayse", "--password-stdin",
        input="the new long passphrase\n",
    )
    assert reset.exit_code == 0 and reset.output.strip() == "password of user ayse reset"
    assert _sign_in(config, "ayse", PASSWORD) == "wrong-credentials"
    assert _sign_in(config, "ayse", "the new long passphrase") == "ayse"
    weak = cli(
        config, "users", "reset-password", "ayse", "--password-stdin", input="ayse12345678\n"
    )
    assert weak.exit_code == 2 and "must not contain the user's name" in weak.output
    actions = [e.action for e in _audit(config) if e.target == "user:ayse"]
    assert actions == [
        "user.created", "auth.signed_in", "user.disabled", "auth.sign_in_failed",
        "user.enabled", "user.password_reset", "auth.sign_in_failed", "auth.signed_in",
    ]


def test_users_list_shows_a_lockout_and_enable_lifts_it(config: Path) -> None:
    _add(config, "ayse", "--role", "dpo")
    for _ in range(5):  # [auth] max_failures
        _sign_in(config, "ayse", "not the password")
    assert _sign_in(config, "ayse", PASSWORD) == "locked-out"
    assert "locked until" in cli(config, "users", "list").output.splitlines()[1]
    listed = json.loads(cli(config, "users", "list", "--json").output)
    assert listed[0]["locked_until"] is not None
    reset = cli(config, "users", "reset-password", "ayse", "--password-stdin",
                input="the new long passphrase\n")
    assert reset.exit_code == 0
    assert _sign_in(config, "ayse", "the new long passphrase") == "ayse"
    assert [e.action for e in _audit(config)].count("auth.locked") == 1


def test_users_totp_prints_the_uri_once_and_stores_it_sealed(config: Path) -> None:
    _add(config, "ayse", "--role", "dpo")
    result = cli(config, "users", "totp", "ayse")
    assert result.exit_code == 0, result.output
    uri = result.stdout.strip()
    assert uri.startswith("otpauth://totp/pbx-bridge:ayse?")
    secret = pyotp.parse_uri(uri).secret
    assert _sign_in(config, "ayse", PASSWORD) == "second-factor-needed"
    assert _sign_in(config, "ayse", PASSWORD, pyotp.TOTP(secret).now()) == "ayse"
    listed = json.loads(cli(config, "users", "list", "--json").output)
    assert listed[0]["totp_enrolled"] is True
    assert secret not in cli(config, "users", "list", "--json").output

    async def stored() -> str | None:
        engine = make_engine(load_settings(config).database.url)
        try:
            async with make_session_factory(engine)() as session:
                return await session.scalar(select(User.totp_secret))
        finally:
            await engine.dispose()

    sealed = asyncio.run(stored())
    assert sealed is not None and secret not in sealed
    assert secret not in " ".join(e.details for e in _audit(config))


def test_tokens_create_list_revoke(config: Path) -> None:
    _add(config, "ayse", "--role", "dpo")
    made = cli(
        config, "tokens", "create", "--user", "ayse", "--scope", "dsar.*,calls.read",
        "--expires-days", "7",
    )
    assert made.exit_code == 0, made.output
    bearer = made.stdout.strip()
    assert bearer.startswith("pbxb_")

    async def principal() -> str | None:
        engine = make_engine(load_settings(config).database.url)
        try:
            found = await token_principal(make_session_factory(engine), bearer)
            return None if found is None else found.actor
        finally:
            await engine.dispose()

    token_id = bearer.removeprefix("pbxb_").split(".")[0]
    assert asyncio.run(principal()) == f"token:{token_id}(ayse)"
    listed = json.loads(cli(config, "tokens", "list", "--json").output)
    assert [(t["id"], t["user"], t["scopes"], t["state"]) for t in listed] == [
        (token_id, "ayse", ["calls.read", "dsar.*"], "active")
    ]
    assert bearer.split(".")[1] not in cli(config, "tokens", "list").output
    revoked = cli(config, "tokens", "revoke", token_id)
    assert revoked.output.strip() == f"token {token_id} of ayse revoked"
    assert asyncio.run(principal()) is None
    assert json.loads(cli(config, "tokens", "list", "--json").output)[0]["state"] == "revoked"
    assert [e.action for e in _audit(config) if e.target == f"token:{token_id}"] == [
        "token.created", "token.revoked"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "ayse", "--scope", "users.write"], "scope 'users.write' is outside role dpo"),
        (["--user", "ayse", "--scope", "calls.steal"], "unknown scope 'calls.steal'"),
        (["--user", "nobody", "--scope", "calls.read"], "no user 'nobody'"),
        (["--user", "ayse", "--scope", "calls.read", "--expires-days", "0"],
         "--expires-days must be 1 to 3650"),
    ],
)
def test_tokens_create_refuses_bad_input(config: Path, args: list[str], message: str) -> None:
    _add(config, "ayse", "--role", "dpo")
    result = cli(config, "tokens", "create", *args)
    assert result.exit_code == 2 and message in result.output


def test_tokens_revoke_unknown(config: Path) -> None:
    result = cli(config, "tokens", "revoke", "no-such-token")
    assert result.exit_code == 2
    assert "no token 'no-such-token'" in result.output
