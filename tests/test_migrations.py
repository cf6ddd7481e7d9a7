"""The migrations and the models must describe the same schema, on both dialects."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.conftest import make_settings
from tutorapp.core import migrate
from tutorapp.core.db import create_engine
from tutorapp.models import metadata


def schema_diff(url: str) -> list:
    async def diff() -> list:
        engine = create_engine(make_settings(url), url, writer=False)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={
                            "compare_type": True, "include_object": migrate.include_object,
                        }), metadata
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(diff())


def table_names(url: str) -> set[str]:
    async def names() -> set[str]:
        engine = create_engine(make_settings(url), url, writer=False)
        try:
            async with engine.connect() as connection:
                from sqlalchemy import inspect

                return set(await connection.run_sync(lambda s: inspect(s).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(names())


def test_models_match_migrations(database_url: str) -> None:
    assert schema_diff(database_url) == []


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    settings = make_settings(database_url)
    try:
        migrate.downgrade(settings, "base")
        assert table_names(database_url) <= {"alembic_version"}
    finally:
        migrate.upgrade(settings)
    assert {t.name for t in metadata.sorted_tables} <= table_names(database_url)
    assert schema_diff(database_url) == []
