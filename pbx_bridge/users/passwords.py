"""Passwords: a minimum policy, argon2id hashes, and rehashing when the cost changes.

argon2 is slow on purpose (tens of milliseconds and tens of MiB per hash), so hashing and
verifying run in a thread: a sign-in must never stall the event loop serving others.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pbx_bridge.config import AuthSettings

# Beyond this a password is more likely a pasted file than a passphrase; argon2 would
# hash it, but nobody types it.
MAX_PASSWORD_LENGTH = 1024


class WeakPassword(ValueError):
    """A password the policy refuses; the message says which rule it breaks, ``rule``
    names it for a translated message (``too_short``, ``too_long``, ``spaces``,
    ``too_simple``, ``contains_name``) and ``params`` its numbers."""

    def __init__(self, message: str, rule: str, **params: int) -> None:
        super().__init__(message)
        self.rule = rule
        self.params = params


def hasher_for(auth: AuthSettings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=auth.argon2_time_cost,
        memory_cost=auth.argon2_memory_kib,
        parallelism=auth.argon2_parallelism,
    )


def check_policy(password: str, *, user_name: str, min_length: int) -> None:
    """Length first (NIST SP 800-63B: length matters, composition rules do not), then
    the two guesses every attacker tries first: the user's own name, one repeated key."""
    if len(password) < min_length:
        raise WeakPassword(
            f"password too short: {len(password)} characters, at least {min_length} needed",
            "too_short", length=len(password), min_length=min_length,
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password too long: at most {MAX_PASSWORD_LENGTH} characters",
                           "too_long", max_length=MAX_PASSWORD_LENGTH)
    if password.strip() != password:
        raise WeakPassword("password must not begin or end with a space", "spaces")
    if len(set(password)) < 4:
        raise WeakPassword("password too simple: it needs at least 4 different characters",
                           "too_simple")
    if user_name and user_name.lower() in password.lower():
        raise WeakPassword("password must not contain the user's name", "contains_name")


def new_password(*, user_name: str, min_length: int) -> str:
    """A random password the policy accepts, for an admin to hand over once (the console's
    add-user and reset-password show it a single time; only its hash is kept)."""
    length = max(min_length, 16)
    while True:
        candidate = secrets.token_urlsafe(length)[:length]
        try:
            check_policy(candidate, user_name=user_name, min_length=min_length)
        except WeakPassword:
            continue
        return candidate


async def hash_password(password: str, auth: AuthSettings) -> str:
    hasher = hasher_for(auth)
    return await asyncio.to_thread(hasher.hash, password)


@dataclass(frozen=True)
class Verified:
    ok: bool
    # The hash to store instead (the cost settings changed since it was made), or None.
    new_hash: str | None = None


def _verify(hasher: PasswordHasher, stored: str, password: str) -> Verified:
    try:
        hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verified(False)
    if hasher.check_needs_rehash(stored):
        return Verified(True, hasher.hash(password))
    return Verified(True)


async def verify_password(stored: str, password: str, auth: AuthSettings) -> Verified:
    return await asyncio.to_thread(_verify, hasher_for(auth), stored, password)


# Verified against when the name is unknown, so "no such user" takes as long as "wrong
# password" and the timing does not tell which names exist. Made once per cost setting.
_DUMMY: dict[tuple[int, int, int], str] = {}


async def spend_like_a_verify(password: str, auth: AuthSettings) -> None:
    key = (auth.argon2_time_cost, auth.argon2_memory_kib, auth.argon2_parallelism)
    if key not in _DUMMY:
        _DUMMY[key] = await hash_password("pbx-bridge: no such user", auth)
    await verify_password(_DUMMY[key], password, auth)
