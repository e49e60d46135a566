"""Where recordings go: every storage backend reachable and writable (the probe of
`pbx-bridge storage check`), in an allowed country, with its master key where it encrypts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from pbx_bridge.calls.routes import ResolvedRoute
from pbx_bridge.config import StorageSettings
from pbx_bridge.health_check.findings import Finding, ok, problem
from pbx_bridge.jurisdiction import violations
from pbx_bridge.storage_setup import LOCAL, build_backends, closing_backends, target_encrypts
from storage.backends.base import Backend
from storage.backends.probe import ProbeResult, probe
from storage.errors import KeyringError
from storage.keyring import Keyring

# -- decisions -----------------------------------------------------------------------------


def probe_finding(name: str, where: str, result: ProbeResult) -> Finding:
    failed = [s for s in result.steps if not s.ok]
    if not failed:
        return ok("storage.backends", f"backend {name!r} ({where}) writable: put, read "
                  "back and delete work", backend=name)
    step = failed[0]
    section = "[storage.local]" if name == LOCAL else f"[storage.backends.{name}]"
    return problem("storage.backends", f"backend {name!r} ({where}) failed at {step.step}: "
                   f"{step.detail}; fix {section} or the server's permissions",
                   backend=name, step=step.step)


def jurisdiction_findings(
    routes: Iterable[ResolvedRoute], storage: StorageSettings
) -> list[Finding]:
    found = [
        problem("storage.jurisdiction", f"{text}: move that target's jurisdiction or change "
                "the route's --require-jurisdiction")
        for text in violations(routes, storage)
    ]
    if found:
        return found
    where = sorted({storage.jurisdiction_of(t) for t in storage.targets})
    return [ok("storage.jurisdiction", f"every target is where the routes allow "
               f"({', '.join(where)})")]


def encrypting_targets(storage: StorageSettings) -> list[str]:
    return [t for t in storage.targets if target_encrypts(storage, t)]


def master_key_findings(
    in_use: Mapping[str, int], loaded: frozenset[str] | None, load_error: str | None
) -> list[Finding]:
    """Every master key that still wraps a recording's data key must be loadable."""
    if not in_use:
        return [ok("storage.master_keys", "no encrypted recording needs a master key")]
    if loaded is None:
        total = sum(in_use.values())
        return [problem("storage.master_keys", f"{total} encrypted recording(s) need master "
                        f"key(s) {', '.join(sorted(in_use))}, but none loads: {load_error}",
                        needed=sorted(in_use))]
    missing = sorted(set(in_use) - loaded)
    if not missing:
        return [ok("storage.master_keys", f"all {len(in_use)} master key(s) wrapping "
                   "recordings' data keys are loaded")]
    return [problem("storage.master_keys", f"master key {key_id} is not loaded but wraps "
                    f"{in_use[key_id]} recording(s)' data keys, which cannot be read without "
                    f"it: put {key_id}.key back in [storage] keys_dir (from your key backup)",
                    key_id=key_id, recordings=in_use[key_id])
            for key_id in missing]


# -- checks --------------------------------------------------------------------------------

async def check_backends(storage: StorageSettings, timeout_s: float) -> list[Finding]:
    """Each backend within its own time limit, so one silent server hides no other."""
    # Off the loop: building a backend imports its client library on first use.
    backends: Mapping[str, Backend] = await asyncio.to_thread(build_backends, storage)
    names = [n for n in storage.targets if n in backends]

    async def one(name: str) -> Finding:
        where = storage.jurisdiction_of(name)
        try:
            result = await asyncio.wait_for(probe(backends[name]), timeout_s)
        except TimeoutError:
            return problem("storage.backends", f"backend {name!r} ({where}) did not answer "
                           f"within {timeout_s:g} s: is the server up and reachable?",
                           backend=name)
        return probe_finding(name, where, result)

    async with closing_backends(backends):
        return list(await asyncio.gather(*(one(n) for n in names)))


async def check_encryption(storage: StorageSettings) -> list[Finding]:
    encrypting = encrypting_targets(storage)
    if not encrypting:
        return [ok("storage.encryption", "no target encrypts; no master key needed")]
    try:
        keyring = await asyncio.to_thread(Keyring.load, storage.keys_dir)
    except KeyringError as exc:
        return [problem("storage.encryption", f"{', '.join(encrypting)} encrypt(s) but the "
                        f"master key cannot be loaded: {exc}", targets=encrypting)]
    return [ok("storage.encryption", f"master key {keyring.active_id} active for "
               f"{', '.join(encrypting)}", active=keyring.active_id, targets=encrypting)]


async def check_master_keys(storage: StorageSettings, in_use: Mapping[str, int]) -> list[Finding]:
    if not in_use:
        return master_key_findings(in_use, None, None)
    try:
        keyring = await asyncio.to_thread(Keyring.load, storage.keys_dir)
    except KeyringError as exc:
        return master_key_findings(in_use, None, str(exc))
    return master_key_findings(in_use, keyring.key_ids, None)
