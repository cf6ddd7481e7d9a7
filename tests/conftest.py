"""Test harness: every database test runs once per dialect.

SQLite always; PostgreSQL too when TUTORAPP_TEST_POSTGRES_URL is set. Each run
creates its own database per dialect (built by the Alembic migrations, never by
`create_all`), drops it at the end, and empties every table after each test, so
each test starts on a fresh database while the schema is built only once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from tests.waiting import deadline
from tutorapp.app import create_app
from tutorapp.config import Settings
from tutorapp.core import migrate
from tutorapp.jobs import runtime as jobs_runtime
from tutorapp.models import metadata

POSTGRES_URL = os.environ.get("TUTORAPP_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TUTORAPP_TEST_REDIS_URL")
DIALECTS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


async def _admin_execute(url: str, statement: str) -> None:
    import asyncpg

    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username,
        password=parsed.password, database=parsed.database or "postgres",
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


# What a staging or prod process must have besides a secret: a named public URL and
# real vendors (the sandbox and the outbox are refused there).
LIVE_VENDORS: dict[str, object] = {
    "public_url": "https://tutorapp.example",
    "payments_provider": "lemonsqueezy", "lemonsqueezy_api_key": "ls-test-key",
    "lemonsqueezy_store_id": "4321", "lemonsqueezy_webhook_secret": "ls-webhook-secret",
    "email_provider": "smtp", "smtp_host": "smtp.tutorapp.example",
}


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "profile": "test", "database_url": database_url, "secret_key": TEST_SECRET,
        "allowed_hosts": ["testserver", "localhost", "127.0.0.1"],
        # Apps built with another profile (dev, staging) would start the embedded job
        # worker; tests that want it say so (tests/jobs).
        "jobs_embedded_worker": False,
        # A loaded machine waits longer for row locks, the SQLite write lock and a pooled
        # connection: these bounds grow with every test deadline (tests/waiting.py), so a
        # race test sees 409s, not 503s, when CI is busy. Outage tests set their own.
        "database_lock_timeout_ms": int(deadline(30) * 1000),
        "sqlite_busy_timeout_ms": int(deadline(30) * 1000),
        "database_pool_timeout": deadline(30),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session", params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database built by the migrations, for the whole run of one dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'tutorapp.db'}"
        migrate.upgrade(make_settings(url))
        jobs_runtime.ensure_system_database(make_settings(url))
        yield url
        return
    with postgres_database("tutorapp_test") as url:
        # DBOS's schema now, while nothing else is connected: its migrations
        # `CREATE INDEX CONCURRENTLY`, which waits for every open transaction of the
        # database, so the first jobs test of a worker could hang behind another
        # test's idle pooled connection.
        jobs_runtime.ensure_system_database(make_settings(url))
        yield url


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database built by the migrations, dropped on exit."""
    assert POSTGRES_URL
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(make_settings(url))
        yield url
    finally:
        asyncio.run(_admin_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def dialect(database_url: str) -> str:
    return make_url(database_url).get_backend_name()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


SEED_TABLES = {"storage_buckets"}


async def _empty_all_tables(app: FastAPI) -> None:
    """DELETE, children first, on both dialects: a test leaves a few rows, and on
    PostgreSQL a TRUNCATE of all 35 tables cost 0.2-0.35 s per test (it rewrites
    every table's files) where these DELETEs take a few milliseconds."""
    database = app.state.database
    async with database.primary.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name not in SEED_TABLES:  # rows a migration inserts are schema
                await connection.execute(table.delete())


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            await _empty_all_tables(application)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def db(app: FastAPI):  # the Database of the app under test
    return app.state.database


# --- per-dialect summary -------------------------------------------------------
# The dialect rides on each report (`user_properties`), so the summary and the CI
# check below also work under pytest-xdist, where the controller collects nothing.

_dialects_run: set[str] = set()


def _dialect(report: pytest.TestReport) -> str:
    return dict(getattr(report, "user_properties", ())).get("dialect", "no database")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        param = (callspec.params.get("database_url") or callspec.params.get("server")
                 if callspec else None)  # e2e tests run per dialect through `server`
        item.user_properties.append(("dialect", param or "no database"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _dialects_run.add(_dialect(report))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    counts: dict[str, Counter[str]] = {}
    for outcome in ("passed", "failed", "error", "skipped", "xfailed"):
        for report in terminalreporter.stats.get(outcome, []):
            if (getattr(report, "when", "call") != "call" and outcome != "error"
                    and not (outcome == "skipped" and report.when == "setup")):
                continue
            counts.setdefault(_dialect(report), Counter())[outcome] += 1
    if not counts:
        return
    terminalreporter.section("tests per dialect")
    for dialect in sorted(counts):
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts[dialect].items()))
        terminalreporter.write_line(f"{dialect}: {parts}")
    if POSTGRES_URL and not counts.get("postgresql", Counter()).get("passed"):
        terminalreporter.write_line("TUTORAPP_TEST_POSTGRES_URL is set but no test passed on it")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, a PostgreSQL run that silently ran nothing is a failure."""
    if not (os.environ.get("CI") and POSTGRES_URL) or exitstatus != 0:
        return
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller sees every report and decides
    if "postgresql" not in _dialects_run:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_report_header(config) -> str:
    return f"tutorapp dialects: {', '.join(DIALECTS)}; redis: {'yes' if REDIS_URL else 'no'}"


ROOT = Path(__file__).resolve().parent.parent
