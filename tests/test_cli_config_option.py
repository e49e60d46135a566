"""``--config`` works before the command (global) and after any group or command, and the
one given after the command wins: a systemd unit runs ``pbx-bridge run --config FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import clean_pbx_env  # noqa: F401  (autouse fixture)
from typer.main import get_command
from typer.testing import CliRunner, Result

from pbx_bridge.cli.main import app


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def site(tmp_path: Path, name: str, target: str) -> Path:
    """A config of its own (database, default route target), migrated."""
    folder = tmp_path / name
    folder.mkdir()
    config = folder / "pbx-bridge.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{folder}/pbx-bridge.db"\n'
        f'[default_route]\ntarget = "{target}"\n',
        encoding="utf-8",
    )
    result = invoke("db", "upgrade", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert f"{folder}/pbx-bridge.db" in result.stdout
    return config


@pytest.fixture
def a(tmp_path: Path) -> Path:
    return site(tmp_path, "a", target="201")


@pytest.fixture
def b(tmp_path: Path) -> Path:
    return site(tmp_path, "b", target="202")


def default_target(route_list: Result) -> str:
    assert route_list.exit_code == 0, route_list.output
    (line,) = [line for line in route_list.stdout.splitlines() if "(any other)" in line]
    return line.split()[2]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "A", "route", "list"], "201"),  # global, as before
        (["route", "list", "--config", "A"], "201"),  # on the command
        (["route", "--config", "A", "list"], "201"),  # on the group
        (["--config", "B", "route", "list", "--config", "A"], "201"),  # command wins
        (["--config", "A", "route", "--config", "B", "list"], "202"),  # group wins
        (["--config", "B", "route", "--config", "B", "list", "--config=A"], "201"),
    ],
)
def test_the_innermost_config_is_used(
    a: Path, b: Path, args: list[str], expected: str
) -> None:
    paths = {"A": str(a), "B": str(b), "--config=A": f"--config={a}"}
    assert default_target(invoke(*(paths.get(arg, arg) for arg in args))) == expected


def test_config_after_a_command_with_arguments_and_options(a: Path, b: Path) -> None:
    result = invoke("ext", "set", "101", "--recording", "never", "--config", str(b))
    assert result.exit_code == 0, result.output
    assert "101" in invoke("ext", "list", "--config", str(b)).stdout
    assert "101" not in invoke("ext", "list", "--config", str(a)).stdout
    result = invoke("calls", "list", "--json", "--config", str(a), "--limit", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "[]"


def test_run_takes_config_after_the_command(tmp_path: Path) -> None:
    """What the systemd unit runs: the file given after ``run`` is the one read."""
    bad = tmp_path / "pbx-bridge.toml"
    bad.write_text('[ari]\nurll = "http://127.0.0.1:1"\n', encoding="utf-8")
    result = invoke("run", "--config", str(bad))
    assert result.exit_code == 2
    assert f"{bad}: ari.urll: unknown key" in result.stderr
    assert "No such option" not in result.output
    missing = invoke("--config", str(bad), "run", "--config", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2
    assert "nope.toml: config file not found" in missing.stderr


def test_a_config_value_that_looks_like_an_option_is_a_path(tmp_path: Path) -> None:
    odd = tmp_path / "--json"
    result = invoke("calls", "list", "--config", str(odd))
    assert result.exit_code == 2
    assert "--json: config file not found" in result.stderr


def _every_command(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found.extend(_every_command(sub, (*path, name)))
    return found


def test_every_group_and_command_shows_config_in_its_help() -> None:
    commands = _every_command(get_command(app))
    assert ("run",) in commands and ("route", "list") in commands and ("purge",) in commands
    for path in commands:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "--config" in result.stdout, f"pbx-bridge {' '.join(path)} --help"
