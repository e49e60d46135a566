"""The web console's set-up without a browser: its [web] config, refusing to start
without a secret key, the message catalogues and the choice of language."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from web_harness import CLI, WebConsole

from pbx_bridge.config import ConfigError, load_settings
from pbx_bridge.web.i18n import MESSAGES_DIR, Catalogue, accepted


def run_cli(console: WebConsole, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=console.env(), capture_output=True, text=True, timeout=60,
        check=False,
    )


def test_web_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    console = WebConsole(tmp_path)
    text = console.config_path.read_text(encoding="utf-8")
    console.config_path.write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("secret_key")),
        encoding="utf-8",
    )
    result = run_cli(console, "web")
    assert result.returncode == 2, result.stderr
    assert "web.secret_key is not set" in result.stderr
    assert "PBX_BRIDGE_WEB__SECRET_KEY" in result.stderr


def test_web_names_the_key_when_its_port_is_taken(tmp_path: Path) -> None:
    console = WebConsole(tmp_path)
    console.cli("db", "upgrade")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", console.port))
        taken.listen()
        result = run_cli(console, "web")
    assert result.returncode == 2, result.stderr
    assert f"web.listen: cannot listen on 127.0.0.1:{console.port}" in result.stderr


def test_web_names_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli(WebConsole(tmp_path), "web")
    assert result.returncode == 1 and "db upgrade" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[web]\nsecret_key = "short"\n', "web.secret_key: Value error, must be at least 32"),
        ('[web]\nlisten = "8090"\n', "web.listen: Value error, expected host:port"),
        ('[web]\nbase_url = "pbx.example.com"\n', "web.base_url: Value error, must start with"),
        ('[web]\nfour_eyes = "sometimes"\n', "web.four_eyes"),
    ],
)
def test_bad_web_settings_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_an_https_base_url_makes_the_cookies_secure(tmp_path: Path) -> None:
    path = tmp_path / "pbx-bridge.toml"
    path.write_text('[web]\nbase_url = "https://pbx.example.com/"\n', encoding="utf-8")
    web = load_settings(path).web
    assert web.base_url == "https://pbx.example.com" and web.secure_cookies
    assert web.listen == "127.0.0.1:8090" and not web.four_eyes


def test_every_language_has_every_message() -> None:
    catalogue = Catalogue.load("tr")
    assert {"en", "tr"} <= set(catalogue.languages)
    keys = {language: set(messages) for language, messages in catalogue.messages.items()}
    for language, own in keys.items():
        assert own == keys["en"], f"{MESSAGES_DIR}/{language}.toml differs from en.toml"


def test_the_language_is_the_users_then_the_browsers_then_the_sites() -> None:
    catalogue = Catalogue.load("tr")
    assert catalogue.choose("en", "tr-TR,tr;q=0.9") == "en"
    assert catalogue.choose(None, "de-DE,de;q=0.9,en-US;q=0.8,tr;q=0.7") == "en"
    assert catalogue.choose(None, "en;q=0.1, tr;q=0.5") == "tr"
    assert catalogue.choose(None, "de, fr;q=0") == "tr"
    assert catalogue.choose("xx", None) == "tr"
    assert accepted("en;q=0, tr") == ["tr"]
    assert catalogue.translator("tr")("calls.count", count=3) == "3 görüşme gösteriliyor"
