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
def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", "tutorapp:migrations")
    return ScriptDirectory.from_config(config)


def head_revisions() -> tuple[str, ...]:
    return tuple(_script().get_heads())


def missing_heads(current: tuple[str, ...]) -> list[str]:
    """Heads of the code not yet applied. A head reached through another one's
    `depends_on` counts as applied though the database does not list it."""
    script = _script()
    applied = {r.revision for r in script.iterate_revisions(current, "base")} if current else set()
    return [head for head in script.get_heads() if head not in applied]


# Objects a migration creates by hand for one dialect only (full-text search, the
# bookings exclusion constraint): not in the models, so autogenerate must ignore them.
UNMAPPED_OBJECTS = {
    ("column", "search_vector"),
    ("index", "ix_tutor_profiles_search_vector"),
    ("index", "ex_bookings_no_overlap"),
}
UNMAPPED_TABLE_PREFIXES = ("tutor_search",)  # the SQLite FTS5 table and its shadow tables


def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    """Alembic `include_object` hook: skip the hand-made objects above."""
    if reflected and compare_to is None and name is not None:
        if (type_, name) in UNMAPPED_OBJECTS:
            return False
        if type_ == "table" and name.startswith(UNMAPPED_TABLE_PREFIXES):
            return False
    return True


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    async with engine.connect() as connection:
        heads = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )
    return tuple(heads)

