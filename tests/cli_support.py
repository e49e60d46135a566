"""What the CLI tests share: an environment without our variables, and a runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pbx_bridge.cli.main import app


@pytest.fixture(autouse=True)
def clean_pbx_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's or CI's PBX_BRIDGE_* variables would override the test's config;
    autouse in every module that imports it."""
    for name in list(os.environ):
        if name.startswith("PBX_BRIDGE_"):
            monkeypatch.delenv(name)
    # Progress lines appear only when a command runs past a second, which a loaded machine
    # decides: tests that want them turn them on (tests/test_cli_progress.py).
    monkeypatch.setenv("PBX_BRIDGE_PROGRESS", "off")


def cli(config: Path, *args: str, input: str | None = None) -> Result:
    """``pbx-bridge --config CONFIG ARGS...`` in-process, with ``input`` on stdin."""
    return CliRunner().invoke(app, ["--config", str(config), *args], input=input)


__all__ = ["clean_pbx_env", "cli"]
