"""The console's words, one TOML file per language in ``messages/`` (adding a language is
adding a file), and which language a request gets: the user's own choice, else the one
picked signed out with the header's switch (a cookie), else the browser's
Accept-Language, else the site's default."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

MESSAGES_DIR = Path(__file__).parent / "messages"
# Where a key is missing in a language, this one's text is shown (never the bare key).
FALLBACK = "en"


class CatalogueError(ValueError):
    """A message file cannot be used; the message names the file."""


@dataclass(frozen=True)
class Catalogue:
    messages: Mapping[str, Mapping[str, str]]
    default: str

    @classmethod
    def load(cls, default: str, folder: Path = MESSAGES_DIR) -> Catalogue:
        messages: dict[str, dict[str, str]] = {}
        for path in sorted(folder.glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise CatalogueError(f"{path}: not valid TOML: {exc}") from exc
            messages[path.stem] = dict(_flatten(data))
        if FALLBACK not in messages:
            raise CatalogueError(f"{folder}: no {FALLBACK}.toml")
        return cls(messages, default if default in messages else FALLBACK)

    @property
    def languages(self) -> list[str]:
        return sorted(self.messages)

    def choose(
        self, preferred: str | None, accept_language: str | None, picked: str | None = None
    ) -> str:
        for choice in (preferred, picked):
            if choice in self.messages:
                return str(choice)
        for tag in accepted(accept_language or ""):
            base = tag.split("-")[0]
            if base in self.messages:
                return base
        return self.default

    def translator(self, language: str) -> Callable[..., str]:
        own = self.messages.get(language, {})
        fallback = self.messages[FALLBACK]

        def t(key: str, /, **params: object) -> str:
            text = own.get(key) or fallback.get(key)
            if text is None:
                raise KeyError(f"no message {key!r} in {MESSAGES_DIR}/{FALLBACK}.toml")
            return text.format(**params) if params else text

        return t


def _flatten(data: Mapping[str, object], prefix: str = "") -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, f"{name}."))
        else:
            items.append((name, str(value)))
    return items


def accepted(header: str) -> list[str]:
    """Accept-Language's tags, most wanted first (``q=0`` ones dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]
