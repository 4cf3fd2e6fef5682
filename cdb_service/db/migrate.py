"""Run migrations and tell whether the database is at head (readiness needs that)."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from cdb_service.kernel.resources import migrations_dir
from cdb_service.settings import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["settings"] = settings
    return config


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(Settings())).get_heads())


async def upgrade(settings: Settings, target: str = "head") -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(settings), target)


async def downgrade(settings: Settings, target: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(settings), target)


async def current_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        heads = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )
    return set(heads)


async def at_head(engine: AsyncEngine) -> bool:
    return await current_revisions(engine) == head_revisions()
