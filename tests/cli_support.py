"""What the CLI tests share: an environment without our variables, and a runner."""

from __future__ import annotations

import base64
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


def migrated_config(
    folder: Path, sections: str = "", *, subject_key: bytes | None = None
) -> Path:
    """A config on a migrated SQLite database under ``folder`` (plus ``sections``, TOML),
    with the subject key in a file when given."""
    if subject_key is not None:
        key = folder / "keys" / "subject.key"
        key.parent.mkdir(exist_ok=True)
        key.write_text(base64.b64encode(subject_key).decode() + "\n")
        key.chmod(0o600)
        sections = f'[privacy]\nsubject_key_file = "{key}"\n{sections}'
    path = folder / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{folder}/var/pbx-bridge.db"\n{sections}'
    )
    result = cli(path, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return path


__all__ = ["clean_pbx_env", "cli", "migrated_config"]
