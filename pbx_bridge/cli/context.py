"""What every command needs: the settings (loaded only when used) and a checked session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.config import Settings, load_settings
from storage.database import ensure_migrated, make_engine, make_session_factory


@dataclass
class CliState:
    config_path: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """Load on first use, so ``--help`` works even with a broken config file."""
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def use_config(self, path: Path) -> None:
        """A ``--config`` given after the command: it wins over one given before it."""
        self.config_path = path
        self._settings = None


def settings_of(ctx: typer.Context) -> Settings:
    state = ctx.find_object(CliState)
    if state is None:  # a command invoked without the root callback (tests calling it directly)
        state = CliState()
        ctx.obj = state
    return state.settings()


@asynccontextmanager
async def session_for(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session on a database at head; commits if the block succeeds."""
    engine = make_engine(settings.database.url)
    try:
        await ensure_migrated(engine)
        async with make_session_factory(engine)() as session:
            yield session
            await session.commit()
    finally:
        await engine.dispose()


@asynccontextmanager
async def sessions_for(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on a database at head, for work that commits step by step."""
    engine = make_engine(settings.database.url)
    try:
        await ensure_migrated(engine)
        yield make_session_factory(engine)
    finally:
        await engine.dispose()
