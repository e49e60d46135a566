"""``--config`` on every group and command, not only before the command.

A systemd unit, a cron line or an admin naturally writes ``pbx-bridge run --config FILE``;
with the option only before the command that failed with "No such option". The root's
own ``--config`` (declared on its callback in main.py) is copied here onto every group and
command as typer builds the tree: one place, so a command added later gets it too, and
click parses it like any other option (no rewriting of argv). The innermost one given
wins: ``pbx-bridge --config A route list --config B`` reads B.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from pbx_bridge.cli.context import CliState

CONFIG_OPTION = "--config"
CONFIG_HELP = (
    "Config file (default: $PBX_BRIDGE_CONFIG, then /etc/pbx-bridge/pbx-bridge.toml if"
    " present, else built-in defaults)."
)


def _use_config(ctx: typer.Context, _param: object, value: Path | None) -> None:
    # Runs while click parses this command's arguments, after every enclosing group's
    # callback has run: a value given here overrides one given further out.
    if value is not None:
        ctx.ensure_object(CliState).use_config(Path(value))


def _is_config(param: Any) -> bool:
    return CONFIG_OPTION in getattr(param, "opts", ())


def add_config_option(command: Any, option: Any) -> None:
    """Give ``command`` (and, for a group, everything under it) a copy of ``option``
    that records its value in the CLI state instead of passing it to the function."""
    if not any(_is_config(param) for param in command.params):
        own = copy.copy(option)
        own.callback = _use_config
        own.expose_value = False
        command.params.append(own)
    for sub in getattr(command, "commands", {}).values():
        add_config_option(sub, option)


class ConfigEverywhereGroup(TyperGroup):
    """The root group: takes ``--config`` from its callback, hands it to its descendants."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        option = next((param for param in self.params if _is_config(param)), None)
        if option is None:  # main.py's callback declares it; without it, nothing to share
            raise RuntimeError("the root command has no --config option to share")
        for command in self.commands.values():
            add_config_option(command, option)
