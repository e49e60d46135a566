"""Who is running a command, as the audit trail and tombstones record it.

On a SQLite deployment the database file belongs to the service's user, so admins run the
CLI as that user through sudo; the person behind it is then ``SUDO_USER``, not the login
name. Both come from the environment: this names the operator, it does not authenticate.
"""

from __future__ import annotations

import getpass
import os


def cli_actor() -> str:
    """``cli:<user>``: the sudo caller if any, else the login name; ``cli`` if neither."""
    sudo_user = os.environ.get("SUDO_USER", "").strip()
    if sudo_user:
        return f"cli:{sudo_user}"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
