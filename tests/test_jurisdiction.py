"""KVKK art. 9: a route's recordings never go to a backend outside the country it requires."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pbx_bridge.cli.main import app
from pbx_bridge.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PBX_BRIDGE_CONFIG", "PBX_BRIDGE_ARI__PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def write_config(tmp_path: Path, archive_country: str, extra: str = "") -> Path:
    config = tmp_path / "pbx-bridge.toml"
    config.write_text(
        f"""
[ari]
password = "x"
[database]
url = "sqlite+aiosqlite:///{tmp_path}/db.sqlite"
[storage]
spool_dir = "{tmp_path}/spool"
targets = ["local", "archive"]
{extra}
[storage.local]
path = "{tmp_path}/local"
[storage.backends.archive]
type = "local"
path = "{tmp_path}/archive"
jurisdiction = "{archive_country}"
""",
        encoding="utf-8",
    )
    return config


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_route_requiring_tr_is_refused_while_a_target_is_abroad(tmp_path: Path) -> None:
    config = write_config(tmp_path, "DE")
    assert cli(config, "db", "upgrade").exit_code == 0
    result = cli(config, "route", "set", "2125550100", "--require-jurisdiction", "TR")
    assert result.exit_code == 2
    assert "route 2125550100 requires TR" in result.output
    assert "'archive' keeps recordings in DE" in result.output
    listed = cli(config, "route", "list")
    assert "2125550100" not in listed.output  # nothing half-written


def test_route_requirement_is_kept_when_every_target_complies(tmp_path: Path) -> None:
    config = write_config(tmp_path, "TR")
    assert cli(config, "db", "upgrade").exit_code == 0
    result = cli(config, "route", "set", "2125550100", "--require-jurisdiction", "tr")
    assert result.exit_code == 0, result.output
    assert "TR" in cli(config, "route", "list").output
    bad = cli(config, "route", "set", "2125550100", "--require-jurisdiction", "Turkey")
    assert bad.exit_code == 2 and "two-letter country code" in bad.output


def test_service_refuses_to_start_when_a_target_moves_abroad(tmp_path: Path) -> None:
    config = write_config(tmp_path, "TR")
    assert cli(config, "db", "upgrade").exit_code == 0
    assert cli(config, "route", "set", "2125550100", "--require-jurisdiction", "TR").exit_code == 0
    # The admin later points the archive at a server abroad.
    config = write_config(tmp_path, "NL")
    result = cli(config, "run")
    assert result.exit_code == 2
    assert "route 2125550100 requires TR" in result.output
    assert "keeps recordings in NL" in result.output


def test_global_requirement_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "DE", extra='require_jurisdiction = "TR"')
    with pytest.raises(ConfigError, match="'archive' keeps recordings in DE"):
        load_settings(config)
