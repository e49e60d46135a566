"""The storage pipeline's targets, built from the config: which backends, how, and when.

Also the sidecar facts only the call layer knows (caller, DID), so the customer's archive
describes itself without the storage layer learning about calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import Call
from pbx_bridge.config import StorageSettings
from pbx_bridge.privacy import mask_number
from storage.backends.base import Backend
from storage.backends.local import LocalBackend
from storage.backends.settings import BackendSettings
from storage.envelope import EnvelopeEncryptor
from storage.keyring import Keyring
from storage.models import Recording
from storage.playback import Player
from storage.replication import Encryptor, SidecarFacts, Target

LOCAL = "local"


def _build(name: str, settings: BackendSettings) -> Backend:
    from storage.backends.factory import build_backend

    return build_backend(name, settings)


def build_backends(settings: StorageSettings) -> dict[str, Backend]:
    """Every configured backend by name; "local" is the embedded default unless redefined."""
    backends: dict[str, Backend] = {}
    if LOCAL not in settings.backends:
        backends[LOCAL] = LocalBackend(settings.local.path)
    for name, backend_settings in settings.backends.items():
        backends[name] = _build(name, backend_settings)
    return backends


@asynccontextmanager
async def closing_backends(backends: Mapping[str, Backend]) -> AsyncIterator[None]:
    """Backends with connection pools (S3) are closed however the service stops."""
    try:
        yield
    finally:
        await asyncio.gather(*(b.close() for b in backends.values()), return_exceptions=True)


def target_encrypts(settings: StorageSettings, name: str) -> bool:
    """Whether copies to target ``name`` are encrypted: the embedded local store says so
    in [storage.local], any other (or a [storage.backends.local]) in its own section."""
    if name == LOCAL and LOCAL not in settings.backends:
        return settings.local.encrypt
    return name in settings.backends and settings.backends[name].encrypt


def build_targets(
    settings: StorageSettings, backends: Mapping[str, Backend] | None = None
) -> list[Target]:
    """The targets every recording is copied to, in the configured order."""
    backends = backends if backends is not None else build_backends(settings)
    targets = []
    for name in settings.targets:
        if name == LOCAL and LOCAL not in settings.backends:
            targets.append(Target(LOCAL, backends[LOCAL], encrypt=target_encrypts(settings, LOCAL)))
            continue
        spec = settings.backends[name]
        targets.append(
            Target(
                name,
                backends[name],
                encrypt=target_encrypts(settings, name),
                concurrency=spec.concurrency,
                schedule=spec.schedule,
                path_template=spec.path_template,
                sidecar=spec.sidecar,
            )
        )
    return targets


def load_keyring(settings: StorageSettings, targets: list[Target]) -> Keyring | None:
    """Master keys: required when a target encrypts, else used if configured (to read
    encrypted copies made under an earlier configuration)."""
    if any(t.encrypt for t in targets) or settings.keys_dir is not None:
        return Keyring.load(settings.keys_dir)
    return None


async def build_player(
    settings: StorageSettings, sessions: async_sessionmaker[AsyncSession]
) -> Player:
    """The player for the web process: every configured backend, the targets first in
    their configured order (the primary copy is tried first), and the master keys if any
    (read in a thread). Close it (``Player.close``) when the process stops."""
    backends = build_backends(settings)
    ordered = {name: backends[name] for name in settings.targets if name in backends}
    ordered.update(backends)
    keyring = await asyncio.to_thread(load_keyring, settings, build_targets(settings, backends))
    return Player(sessions, ordered, keyring)


def build_encryptor(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring | None
) -> Encryptor | None:
    return None if keyring is None else EnvelopeEncryptor(sessions, keyring)


def sidecar_facts(
    sessions: async_sessionmaker[AsyncSession], *, unmasked_caller: bool
) -> SidecarFacts:
    async def facts(recording: Recording) -> Mapping[str, Any]:
        async with sessions() as session:
            call = await session.get(Call, recording.call_id)
        if call is None:
            return {}
        return {
            "caller": call.caller if unmasked_caller else mask_number(call.caller),
            "did": call.did,
            "extension": call.extension,
            "direction": call.direction,
            "linkedid": call.linkedid,
        }

    return facts
