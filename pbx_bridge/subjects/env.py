"""What every data-subject request handler needs, passed as one value.

Handlers (access, export, erasure, ...) share the same dependencies; bundling them keeps
the dispatcher's signature stable as handlers are added, and lets tests pass a fixed clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import Settings
from storage.progress import SILENT, Progress

if TYPE_CHECKING:
    from pbx_bridge.subjects.index import SubjectIndex


@dataclass
class RequestEnv:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    index: SubjectIndex
    actor: str
    now: Callable[[], datetime]
    # How far a long answer (an export of many recordings) has got; the CLI shows it.
    progress: Progress = field(default=SILENT)
