"""Fixtures shared by the end-to-end tests: built prompts, one sandboxed Asterisk for the
session, and a fresh pbx-bridge service (own database and storage) per test.

These tests never skip: `make test` installs what they need, and a missing Asterisk is a
failure to report, not a reason to pass quietly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_names import sandbox_name

pytest.register_assert_rewrite("backend_servers", "e2e_harness", "web_harness", "browser_fixtures")

from e2e_harness import ServiceHarness

from pbx_bridge.config import PromptSettings
from pbx_bridge.prompt_builder import build_prompts
from pbx_bridge.sandbox import AsteriskSandbox

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def built_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts") / "build"
    asyncio.run(build_prompts(PromptSettings(dir=REPO / "prompts"), out))
    return out


@pytest.fixture(scope="session")
def asterisk_sandbox(built_prompts: Path) -> Iterator[AsteriskSandbox]:
    # Two test runs at once (two developers on one host) each need their own sandbox.
    name = sandbox_name()
    sandbox = AsteriskSandbox(name=name, prompts_dir=built_prompts)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def asterisk(asterisk_sandbox: AsteriskSandbox) -> AsteriskSandbox:
    """This worker's Asterisk, running: a test that crashed or stopped it (and failed
    before starting it again) must not leave the next test without one."""
    if not asterisk_sandbox.is_running():
        asterisk_sandbox.start()
    # The cached root outlives test runs, and a failed test may leave a file behind:
    # every test starts from an empty recording folder, so "Asterisk kept nothing"
    # speaks only of that test.
    for leftover in asterisk_sandbox.recordings_dir.glob("*"):
        leftover.unlink()
    return asterisk_sandbox


@pytest.fixture
def service(
    asterisk: AsteriskSandbox, built_prompts: Path, tmp_path: Path
) -> Iterator[ServiceHarness]:
    """A migrated, configured service; the test sets routes and then calls start()."""
    harness = ServiceHarness(asterisk, tmp_path, built_prompts)
    harness.cli("db", "upgrade")
    try:
        yield harness
    finally:
        harness.stop()
