"""One TOML file, overridable by the environment; bad input names the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pbx_bridge.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "pbx-bridge.example.toml"


def _keys(model: type[object], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_example_loads_and_documents_every_key() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.ari.app == "pbx-bridge"
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in _keys(Settings):
        leaf = key.rsplit(".", 1)[-1]
        assert f"{leaf} =" in text or f".{leaf}." in text, f"{key} is not in the example"


def test_embedded_defaults_without_any_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PBX_BRIDGE_CONFIG", raising=False)
    monkeypatch.chdir(REPO)
    settings = load_settings(None)
    assert settings.database.url.startswith("sqlite+aiosqlite:///./var/")
    assert settings.retention.default_days == 60


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_ARI__URL", "http://10.0.0.5:8088/")
    monkeypatch.setenv("PBX_BRIDGE_CALL__RING_TIMEOUT_S", "12")
    settings = load_settings(EXAMPLE)
    assert settings.ari.url == "http://10.0.0.5:8088"
    assert settings.call.ring_timeout_s == 12


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[ari]\nurl = "ftp://pbx"\n', "ari.url"),
        ("[retention]\ndefault_days = -1\n", "retention.default_days"),
        ('[call]\ndial_template = "PJSIP/100"\n', "call.dial_template"),
        ('[default_route]\nannouncement = "sometimes"\n', "default_route.announcement"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
        ('[ari]\npasword = "typo"\n', "ari.pasword: unknown key"),
        ("[ari\n", "not valid TOML"),
    ],
)
def test_bad_input_names_the_key(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert named in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_metrics_listen_is_off_by_default_and_validated() -> None:
    assert Settings().metrics.listen is None
    assert load_settings(EXAMPLE).metrics.address == ("127.0.0.1", 9464)
    assert Settings(metrics={"listen": "[::1]:9100"}).metrics.address == ("::1", 9100)
    for bad in ("9464", "localhost", "127.0.0.1:0", "127.0.0.1:70000", ":9464", "host:port"):
        with pytest.raises(ValidationError, match="expected host:port"):
            Settings(metrics={"listen": bad})


def test_a_bad_metrics_listen_in_the_file_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "pbx-bridge.toml"
    config.write_text('[metrics]\nlisten = "9464"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"metrics\.listen.*expected host:port"):
        load_settings(config)
