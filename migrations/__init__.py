"""One Alembic history for both layers' tables (recordings, calls, routes, ...).

A package, not a loose folder, so an installed pbx-bridge can migrate its database
without a source checkout: ``storage.database.upgrade`` finds the scripts beside this file.
"""

from __future__ import annotations

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).resolve().parent
