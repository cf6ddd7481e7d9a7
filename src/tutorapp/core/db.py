"""Engines, sessions and the per-request unit of work.

`Database` owns one primary engine and, optionally, read-replica engines. Services
receive an `AsyncSession` and only `flush()`; the unit of work commits where the
request (or job) ends and then runs the callbacks registered with `after_commit`.

SQLite runs in WAL mode with foreign keys and a busy timeout. Write transactions on
the primary begin with `BEGIN IMMEDIATE`, so concurrent writers queue on the
database lock instead of failing half-way: this is the "serialized write
transaction" the data rules rely on. Reads routed to `read_session()` use plain
deferred transactions and see the last committed state.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from tutorapp.config import Settings, async_database_url

AfterCommit = Callable[[], Awaitable[Any]]


def _configure_sqlite(engine: AsyncEngine, settings: Settings, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def create_engine(settings: Settings, url: str | URL, *, writer: bool = True) -> AsyncEngine:
    """An async engine for `url` tuned by the settings of its dialect."""
    url = async_database_url(str(url) if isinstance(url, URL) else url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            echo=settings.database_echo,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, settings, begin="BEGIN IMMEDIATE" if writer else "BEGIN")
        return engine

    connect_args: dict[str, Any] = {"server_settings": {"timezone": "UTC"}}
    if settings.database_pgbouncer:
        # pgBouncer in transaction mode cannot keep prepared statements per client.
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
        }
        return create_async_engine(
            url, echo=settings.database_echo, poolclass=NullPool, connect_args=connect_args
        )
    return create_async_engine(
        url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


class Database:
    """The primary engine plus read engines (replicas on PostgreSQL)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.primary = create_engine(settings, settings.database_url, writer=True)
        if settings.database_replica_urls:
            self.replicas = [create_engine(settings, u) for u in settings.database_replica_urls]
        elif settings.is_sqlite:
            self.replicas = [create_engine(settings, settings.database_url, writer=False)]
        else:
            self.replicas = [self.primary]
        self._sessions = async_sessionmaker(self.primary, expire_on_commit=False)
        self._read_sessions = [
            async_sessionmaker(engine, expire_on_commit=False) for engine in self.replicas
        ]

    @property
    def check_engine(self) -> AsyncEngine:
        """For probes: never takes SQLite's write lock, so it cannot wait on a request
        that holds it (the primary's BEGIN IMMEDIATE would)."""
        return self.replicas[0] if self.dialect == "sqlite" else self.primary

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    def session(self) -> AsyncSession:
        return self._sessions()

    def read_session(self) -> AsyncSession:
        """A session on a read replica: may lag the primary by the replication delay."""
        return random.choice(self._read_sessions)()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """Commit on success, roll back on error, then run the after-commit callbacks."""
        async with self.session() as session:
            try:
                yield session
            except BaseException as exc:
                # An expected error may ask to keep what was written before it (a
                # lockout notice, a revoked session): commit, then re-raise.
                if not getattr(exc, "keep_changes", False):
                    await session.rollback()
                    raise
                await session.commit()
                await _run_after_commit(session)
                raise
            await session.commit()
            await _run_after_commit(session)

    async def dispose(self) -> None:
        engines = {id(e): e for e in [self.primary, *self.replicas]}
        for engine in engines.values():
            await engine.dispose()


async def _run_after_commit(session: AsyncSession) -> None:
    for callback in session.info.pop("after_commit", []):
        await callback()


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction committed; never on rollback."""
    session.info.setdefault("after_commit", []).append(callback)


def get_database(request: Request) -> Database:
    return request.app.state.database


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).unit_of_work() as session:
        yield session


async def _request_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).read_session() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client
# never sees success for a transaction that then failed to commit.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(_request_read_session, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_database)]
