"""Unavailable dependencies answer 503 with Retry-After, never 500 (issue 14, items 7, 11).

- SQLite: a lock wait that runs out is a 503 (`database-busy`), and a read-only
  request takes no write lock at all, so it answers while another process writes;
  a full disk is a 503 (`disk-full`) and `/health/ready` names the disk.
- PostgreSQL: a row-lock wait past `lock_timeout` is a 503; a server that is down
  or refuses more clients is a 503 and `/health/ready` says why; when the server is
  back the same process serves again (no restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from tests.conftest import make_settings
from tests.scheduling.conftest import make_market, sign_in
from tests.scheduling.test_bookings import book, tutor
from tests.waiting import wait_until
from tutorapp.app import create_app
from tutorapp.auth.roles import Role
from tutorapp.core import migrate
from tutorapp.core.db import Database


@pytest.fixture
async def quick_app(database_url: str) -> AsyncIterator[FastAPI]:
    """Lock waits give up after 300 ms, so a held lock is felt quickly."""
    application = create_app(make_settings(database_url, sqlite_busy_timeout_ms=300,
                                           database_lock_timeout_ms=300))
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            from tests.conftest import _empty_all_tables

            await _empty_all_tables(application)


@pytest.fixture
async def quick(quick_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=quick_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def assert_unavailable(response: httpx.Response, cause: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["cause"] == cause


async def test_sqlite_reads_answer_while_another_process_holds_the_write_lock(
    quick_app: FastAPI, quick: httpx.AsyncClient, dialect: str,
) -> None:
    if dialect != "sqlite":
        pytest.skip("SQLite's write lock")
    market = await make_market(quick_app, quick)
    _, tutor_id = await tutor(quick_app, quick, market)
    student = await sign_in(quick_app, role=Role.student)
    other = sqlite3.connect(make_url(quick_app.state.settings.database_url).database)
    other.isolation_level = None
    other.execute("BEGIN IMMEDIATE")  # another process (a worker, the CLI) is writing
    try:
        for path in ("/api/v1/me", "/api/v1/bookings", f"/api/v1/tutors/{tutor_id}"):
            response = await quick.get(path, headers=student.headers)
            assert response.status_code == 200, (path, response.text)
        waited = await book(quick, student, tutor_id, "2026-06-03T11:00:00+01:00")
        assert_unavailable(waited, "database-busy")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (await book(quick, student, tutor_id, "2026-06-03T11:00:00+01:00")).status_code == 201


async def test_postgres_lock_wait_past_lock_timeout_is_a_503(
    quick_app: FastAPI, quick: httpx.AsyncClient, dialect: str,
) -> None:
    if dialect != "postgresql":
        pytest.skip("PostgreSQL lock_timeout")
    market = await make_market(quick_app, quick)
    _, tutor_id = await tutor(quick_app, quick, market)
    student = await sign_in(quick_app, role=Role.student)
    url = make_url(quick_app.state.settings.database_url)
    holder = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                   database=url.database)
    try:
        async with holder.transaction():  # a long transaction holds the tutor's row
            await holder.execute("SELECT 1 FROM tutor_profiles WHERE id = $1 FOR UPDATE",
                                 __import__("uuid").UUID(tutor_id))
            waited = await book(quick, student, tutor_id, "2026-06-03T11:00:00+01:00")
            assert_unavailable(waited, "database-busy")
    finally:
        await holder.close()
    assert (await book(quick, student, tutor_id, "2026-06-03T11:00:00+01:00")).status_code == 201


async def test_sqlite_disk_full_is_a_503_and_readiness_names_the_disk(
    app: FastAPI, client: httpx.AsyncClient, dialect: str,
) -> None:
    if dialect != "sqlite":
        pytest.skip("SQLite's file")
    market = await make_market(app, client)
    _, tutor_id = await tutor(app, client, market)
    students = [await sign_in(app, role=Role.student) for _ in range(3)]
    assert (await client.get("/health/ready")).status_code == 200
    database: Database = app.state.database
    await database.dispose()  # no open connection: VACUUM drops the free pages of earlier tests
    probe = sqlite3.connect(make_url(database.settings.database_url).database)
    try:
        probe.execute("VACUUM")
        pages = probe.execute("PRAGMA page_count").fetchone()[0]
    finally:
        probe.close()

    # SQLite reports SQLITE_FULL ("database or disk is full") when the file cannot
    # grow; a page limit at the current size makes every growing write hit it.
    def cap(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count={pages}")
        cursor.close()

    await database.primary.dispose()
    event.listen(database.primary.sync_engine, "connect", cap)
    try:
        full = None
        for n, student in enumerate(students * 30):  # book until the file must grow
            full = await book(client, student, tutor_id, f"2026-06-{2 + n // 8:02d}T"
                              f"{9 + n % 8:02d}:00:00+01:00")
            if full.status_code != 201:
                break
        assert full is not None
        assert_unavailable(full, "disk-full")
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        [disk] = [c for c in ready.json()["checks"] if c["component"] == "disk"]
        assert not disk["ok"] and "database or disk is full" in disk["detail"]
        assert "disk" in ready.json()["detail"]
    finally:
        event.remove(database.primary.sync_engine, "connect", cap)
        await database.primary.dispose()
    # room again: the next write goes through and readiness recovers, no restart
    ok = await book(client, students[0], tutor_id, "2026-07-01T09:00:00+01:00")
    assert ok.status_code == 201, ok.text
    assert (await client.get("/health/ready")).status_code == 200


async def test_sqlite_readiness_fails_below_the_free_space_minimum(database_url: str, dialect: str) -> None:
    if dialect != "sqlite":
        pytest.skip("SQLite's disk")
    application = create_app(make_settings(database_url, sqlite_min_free_mb=10**12))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            ready = await http.get("/health/ready")
    assert ready.status_code == 503
    [disk] = [c for c in ready.json()["checks"] if c["component"] == "disk"]
    assert disk["ok"] is False and "MB free at" in disk["detail"]
    assert ready.json()["detail"] == "Failing: disk."


# --- a PostgreSQL server of our own, to stop and to fill ------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    return None


class OwnPostgres:
    """A throwaway cluster on a spare port (Debian's binaries), run as `postgres`."""

    def __init__(self, root: Path) -> None:
        self.bin = _pg_bin()
        self.data = root / "data"
        self.port = _free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True)

    def init(self) -> None:
        self.data.parent.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.data.parent, "postgres", "postgres")
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")

    def start(self) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                 str(self.data / "log.txt"), "-o",
                 f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                 "-c max_connections=20 -c fsync=off", "start")

    def stop(self) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/app"


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPostgres]:
    if _pg_bin() is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("needs PostgreSQL's server binaries")
    server = OwnPostgres(Path("/tmp") / f"tutorapp-pg-{os.getpid()}-{_free_port()}")
    server.init()
    server.start()
    try:
        subprocess.run([*server.as_postgres, str(server.bin / "createdb"), "-h", "127.0.0.1",
                        "-p", str(server.port), "-U", "postgres", "app"], check=True)
        migrate.upgrade(make_settings(server.url))
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(server.data.parent, ignore_errors=True)


async def test_postgres_down_gives_503_and_the_process_recovers_when_it_returns(
    own_postgres: OwnPostgres,
) -> None:
    settings = make_settings(own_postgres.url, database_pool_size=4, database_max_overflow=0)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            market = await make_market(application, http)
            _, tutor_id = await tutor(application, http, market)
            student = await sign_in(application, role=Role.student)
            assert (await http.get("/health/ready")).status_code == 200

            own_postgres.stop()
            responses = await asyncio.gather(*(
                [book(http, student, tutor_id, f"2026-06-03T{9 + n % 8:02d}:00:00+01:00")
                 for n in range(20)]
                + [http.get("/api/v1/bookings", headers=student.headers) for _ in range(20)]
                + [http.get(f"/tutors/{tutor_id}", headers={"Accept": "text/html"})]
            ))
            for response in responses:
                assert_unavailable(response, "database-unavailable") if response.headers[
                    "content-type"].startswith("application/problem+json") else None
            assert {r.status_code for r in responses} == {503}
            assert "text/html" in responses[-1].headers["content-type"]
            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["detail"] == "Failing: database."

            own_postgres.start()  # back: the same process serves again
            async def ready_again() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await wait_until(ready_again, timeout=30, what="readiness again", interval=0.1)
            booked = await book(http, student, tutor_id, "2026-06-03T11:00:00+01:00")
            assert booked.status_code == 201, booked.text
            assert (await http.get("/api/v1/bookings", headers=student.headers)).status_code == 200


async def test_postgres_too_many_clients_is_a_503(own_postgres: OwnPostgres) -> None:
    settings = make_settings(own_postgres.url, database_pool_size=2, database_max_overflow=0)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            student = await sign_in(application, role=Role.student)
            await application.state.database.primary.dispose()  # no pooled connection left
            # other clients take every connection slot the server has
            hogs = []
            while True:
                try:
                    hogs.append(await asyncpg.connect(own_postgres.url))
                except asyncpg.TooManyConnectionsError:
                    break
            try:
                response = await http.get("/api/v1/bookings", headers=student.headers)
                assert_unavailable(response, "database-unavailable")
                assert "cannot be reached" in response.json()["detail"]
            finally:
                for hog in hogs:
                    await hog.close()
            assert (await http.get("/api/v1/bookings", headers=student.headers)).status_code == 200


async def test_each_engine_names_itself_and_is_sized_by_settings(dialect: str, database_url: str) -> None:
    if dialect != "postgresql":
        pytest.skip("PostgreSQL application_name")
    settings = make_settings(database_url, database_pool_size=3, database_max_overflow=2,
                             jobs_pool_size=4, database_lock_timeout_ms=25000)
    web = Database(settings)
    worker = Database(settings, name="worker", pool_size=settings.jobs_pool_size, max_overflow=0)
    try:
        assert (web.primary.pool.size(), web.primary.pool._max_overflow) == (3, 2)  # type: ignore[attr-defined]
        assert (worker.primary.pool.size(), worker.primary.pool._max_overflow) == (4, 0)  # type: ignore[attr-defined]
        for database, name in ((web, "tutorapp-web"), (worker, "tutorapp-worker")):
            async with database.session() as session:
                assert await session.scalar(text("SHOW application_name")) == name
                assert await session.scalar(text("SHOW lock_timeout")) == "25s"
    finally:
        await web.dispose()
        await worker.dispose()
    from tutorapp.jobs.runtime import dbos_config

    config = dbos_config(settings, "x")
    assert config["sys_db_pool_size"] == 4
    assert config["db_engine_kwargs"]["connect_args"]["application_name"] == "tutorapp-worker"


async def test_cli_and_enqueue_client_connections_name_their_process(
        dialect: str, database_url: str) -> None:
    if dialect != "postgresql":
        pytest.skip("PostgreSQL application_name")
    import sqlalchemy as sa

    from tutorapp.jobs.runtime import Runtime

    settings = make_settings(database_url)
    cli = Database(settings, name="cli", pool_size=2, max_overflow=0)
    try:
        async with cli.session() as session:
            assert await session.scalar(text("SHOW application_name")) == "tutorapp-cli"
    finally:
        await cli.dispose()
    runtime = Runtime()
    runtime.configure(settings, role="cli")
    try:
        await asyncio.to_thread(runtime.client)  # connects at once
        probe = sa.create_engine(sa.make_url(settings.jobs_system_database_url)
                                 .set(drivername="postgresql+psycopg"))
        try:
            with probe.connect() as connection:
                names = set(connection.scalars(text(
                    "SELECT application_name FROM pg_stat_activity WHERE datname = :db"),
                    {"db": probe.url.database}))
        finally:
            probe.dispose()
        assert "tutorapp-cli" in names
        assert "dbos_transact_client" not in names
    finally:
        await asyncio.to_thread(runtime.close)
