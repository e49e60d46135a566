"""Alembic environment for both callers: ``storage.database.upgrade`` and the alembic CLI.

From code, the caller already holds an async connection and hands its sync face in
``config.attributes["connection"]`` (alembic's ``run_sync`` pattern), so no second
event loop is started inside a running one. From the alembic CLI there is no loop yet,
so this file makes an engine from the configured URL and runs one itself.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

# Register the upper layer's tables on Base.metadata: calls, users/tokens/sessions, share
# links, DSAR approvals.
import pbx_bridge.calls.models
import pbx_bridge.subjects.approvals
import pbx_bridge.users.models
import pbx_bridge.web.share_models  # noqa: F401
from storage.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from pbx_bridge.config import load_settings

    return load_settings().database.url


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # New revisions get plain SQLAlchemy types, so they never import the models.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    from storage.database import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    # Only the alembic CLI gets here, so configuring logging from its ini is welcome.
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_with_own_engine(_url()))


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
