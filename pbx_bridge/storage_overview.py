"""The storage backends as an admin sees them: each configured backend, where it keeps
recordings (its jurisdiction), whether it encrypts and is a target, whether it answers
now, and its copies by state, the same counts as ``pbx-bridge storage status --json``.

Reachability asks each backend for the facts of a key that does not exist (a read, so
looking never writes anything; ``pbx-bridge storage check`` is the full write-read-delete
probe), each within its own time limit so one silent server hides no other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from pbx_bridge.config import StorageSettings
from pbx_bridge.storage_setup import LOCAL, build_backends, closing_backends, target_encrypts
from storage.backends.base import Backend
from storage.backends.probe import probe_key
from storage.errors import StorageError
from storage.status import StorageStatus

COPY_STATES = ("pending", "verified", "dead", "deleting", "deleted")


@dataclass(frozen=True)
class BackendState:
    name: str
    type: str
    jurisdiction: str
    target: bool  # in [storage] targets: every recording is copied there
    encrypt: bool
    reachable: bool
    problem: str | None  # why not reachable (the admin's to read: no personal data)
    copies: Mapping[str, int]  # copy status -> count, as storage status --json


def _type_of(storage: StorageSettings, name: str) -> str:
    if name == LOCAL and LOCAL not in storage.backends:
        return "local"
    return storage.backends[name].type


async def _reach(backend: Backend, timeout_s: float) -> str | None:
    try:
        await asyncio.wait_for(backend.stat(probe_key()), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except (StorageError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None


async def backend_states(
    storage: StorageSettings, status: StorageStatus, *, timeout_s: float
) -> list[BackendState]:
    """Every configured backend (targets first, in their order), and any backend the
    copies still name that is no longer configured (unreachable by definition)."""
    # Off the loop: building a backend imports its client library on first use.
    backends: Mapping[str, Backend] = await asyncio.to_thread(build_backends, storage)
    names = [*storage.targets, *sorted(n for n in backends if n not in storage.targets)]
    async with closing_backends(backends):
        problems = await asyncio.gather(*(_reach(backends[n], timeout_s) for n in names))
    states = [
        BackendState(
            name=name,
            type=_type_of(storage, name),
            jurisdiction=storage.jurisdiction_of(name),
            target=name in storage.targets,
            encrypt=target_encrypts(storage, name),
            reachable=problem is None,
            problem=problem,
            copies={s: status.copies.get(name, {}).get(s, 0) for s in COPY_STATES},
        )
        for name, problem in zip(names, problems, strict=True)
    ]
    for name in sorted(set(status.copies) - set(names)):
        states.append(BackendState(
            name=name, type="?", jurisdiction="?", target=False, encrypt=False,
            reachable=False, problem="no longer configured",
            copies={s: status.copies[name].get(s, 0) for s in COPY_STATES},
        ))
    return states
