"""The migrations and the models must describe the same schema, on both dialects."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from tests.conftest import make_settings, postgres_database
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


@pytest.fixture
def own_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A migrated database of `database_url`'s dialect for this test alone: dropping
    every table of the shared one would wait behind any connection still open on it."""
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'downgrade.db'}"
        migrate.upgrade(make_settings(url))
        yield url
        return
    with postgres_database("tutorapp_downgrade") as url:
        yield url


def test_downgrade_to_base_and_upgrade_again(own_database: str) -> None:
    settings = make_settings(own_database)
    migrate.downgrade(settings, "base")
    assert table_names(own_database) <= {"alembic_version"}
    migrate.upgrade(settings)
    assert {t.name for t in metadata.sorted_tables} <= table_names(own_database)
    assert schema_diff(own_database) == []
