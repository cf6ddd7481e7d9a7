"""Alembic, driven from code: the CLI, `serve` and the tests share these."""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from tutorapp.config import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", "tutorapp:migrations")
    config.attributes["settings"] = settings
    return config


@cache
def head_revisions() -> tuple[str, ...]:
    config = Config()
    config.set_main_option("script_location", "tutorapp:migrations")
    return tuple(ScriptDirectory.from_config(config).get_heads())


def upgrade(settings: Settings, revision: str = "heads") -> None:
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    async with engine.connect() as connection:
        heads = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )
    return tuple(heads)


async def is_at_head(engine: AsyncEngine) -> bool:
    return set(await current_revisions(engine)) == set(head_revisions())
