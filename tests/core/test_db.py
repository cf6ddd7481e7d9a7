import asyncio

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import func, select, text

from tutorapp.core.audit import AuditEvent, record
from tutorapp.core.db import Database, SessionDep, after_commit

probe = APIRouter(prefix="/api/v1/probe")
committed_callbacks: list[str] = []


@probe.post("/ok")
async def write_ok(session: SessionDep) -> dict:
    event = await record(session, "probe.ok", subject_type="probe", subject_id="1")

    async def note() -> None:
        committed_callbacks.append(str(event.id))

    after_commit(session, note)
    return {"id": str(event.id)}


@probe.post("/fail")
async def write_then_fail(session: SessionDep) -> dict:
    async def note() -> None:
        committed_callbacks.append("must-not-run")

    await record(session, "probe.fail", subject_type="probe", subject_id="2")
    after_commit(session, note)
    raise RuntimeError("boom after the write")


@pytest.fixture
async def http(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    app.include_router(probe)
    committed_callbacks.clear()
    return client


async def count(db: Database, action: str) -> int:
    async with db.session() as session:
        return await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )


async def test_request_commits_before_answering_and_then_runs_callbacks(
    http: httpx.AsyncClient, db: Database
) -> None:
    response = await http.post("/api/v1/probe/ok")
    assert response.status_code == 200
    assert await count(db, "probe.ok") == 1
    assert committed_callbacks == [response.json()["id"]]


async def test_failed_request_rolls_back_and_skips_callbacks(
    http: httpx.AsyncClient, db: Database
) -> None:
    response = await http.post("/api/v1/probe/fail")
    assert response.status_code == 500
    assert await count(db, "probe.fail") == 0
    assert committed_callbacks == []


async def test_timestamps_come_back_timezone_aware(db: Database) -> None:
    async with db.unit_of_work() as session:
        event = await record(session, "probe.time", subject_type="probe", subject_id="3")
    async with db.session() as session:
        loaded = await session.get(AuditEvent, event.id)
        assert loaded is not None
        assert loaded.created_at.utcoffset().total_seconds() == 0


async def test_sqlite_runs_wal_with_foreign_keys_and_busy_timeout(
    app: FastAPI, db: Database, dialect: str
) -> None:
    if dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    busy_ms = app.state.settings.sqlite_busy_timeout_ms
    async with db.primary.connect() as connection:
        assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == busy_ms


async def test_sqlite_write_transactions_are_serialized(db: Database, dialect: str) -> None:
    """Read-then-write from 20 concurrent units of work: each sees the previous
    one's commit, so every number is taken exactly once (no lost update, no
    'database is locked')."""
    if dialect != "sqlite":
        pytest.skip("PostgreSQL relies on constraints and row locks instead")

    async def take_next_number() -> None:
        async with db.unit_of_work() as session:
            taken = await session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "n")
            )
            await asyncio.sleep(0.005)  # widen the race window
            await record(session, "n", subject_type="counter", subject_id=str(taken))

    await asyncio.gather(*(take_next_number() for _ in range(20)))
    async with db.session() as session:
        numbers = (await session.scalars(
            select(AuditEvent.subject_id).where(AuditEvent.action == "n")
        )).all()
    assert sorted(int(n) for n in numbers) == list(range(20))


async def test_postgres_sessions_run_in_utc(db: Database, dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("PostgreSQL session setting")
    async with db.session() as session:
        assert (await session.execute(text("SHOW timezone"))).scalar() == "UTC"
