"""Engines, sessions and the per-request unit of work.

`Database` owns one primary engine and, optionally, read-replica engines. Services
receive an `AsyncSession` and only `flush()`; the unit of work commits where the
request (or job) ends and then runs the callbacks registered with `after_commit`.

SQLite runs in WAL mode with foreign keys and a busy timeout. A write transaction
holds SQLite's one write lock (`BEGIN IMMEDIATE`), so concurrent writers queue on it
instead of failing half-way: this is the "serialized write transaction" the data
rules rely on. A request's unit of work does not take that lock up front: it begins
as a deferred (read) transaction and takes the lock at its first write or locking
read (`with_for_update`), committing the reads before it (they only read) and
beginning `BEGIN IMMEDIATE` in their place. So read-only requests never queue on the
lock, and a writer holds it only from the point where it decides, as a row lock on
PostgreSQL would. Reads before that point see the last committed state (PostgreSQL's
READ COMMITTED); what a rule decides on is read inside the locked part. Jobs and the
CLI (`unit_of_work()`) lock up front. Reads routed to `read_session()` use plain
deferred transactions.

PostgreSQL sessions set `lock_timeout`, so a lock wait that runs out fails (503 with
Retry-After, see `unavailable`) instead of hanging.
"""

from __future__ import annotations

import random
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, CursorResult, Result
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from starlette.responses import Response

from tutorapp.config import Settings, async_database_url
from tutorapp.core.errors import ServiceUnavailable, render_problem
from tutorapp.core.logging import get_logger

AfterCommit = Callable[[], Awaitable[Any]]
T = TypeVar("T")
log = get_logger("tutorapp.db")


LAZY_LOCK = "tutorapp_sqlite_lazy_lock"  # execution option of request sessions (SQLite)
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT")


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
        lazy = begin != "BEGIN" and connection.get_execution_options().get(LAZY_LOCK, False)
        connection.info["sqlite_read_only"] = lazy
        connection.exec_driver_sql("BEGIN" if lazy else begin)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _lock_on_first_write(
        connection: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if not connection.info.get("sqlite_read_only"):
            return
        compiled = getattr(context, "compiled", None)
        locking_read = getattr(getattr(compiled, "statement", None), "_for_update_arg", None)
        if locking_read is None and not statement.lstrip().upper().startswith(_WRITES):
            return
        # End the read transaction (it wrote nothing) and begin a writing one.
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute("COMMIT")
            cursor.execute("BEGIN IMMEDIATE")
        finally:
            cursor.close()
        connection.info["sqlite_read_only"] = False


def create_engine(
    settings: Settings, url: str | URL, *, writer: bool = True, name: str = "web",
    pool_size: int | None = None, max_overflow: int | None = None,
) -> AsyncEngine:
    """An async engine for `url` tuned by the settings of its dialect. `name` becomes
    the PostgreSQL `application_name` (`tutorapp-<name>`: web, worker or cli); pool
    sizes default to the web process's `database_pool_size` / `database_max_overflow`."""
    url = async_database_url(str(url) if isinstance(url, URL) else url)
    pool: dict[str, Any] = {
        "pool_size": settings.database_pool_size if pool_size is None else pool_size,
        "max_overflow": settings.database_max_overflow if max_overflow is None else max_overflow,
        "pool_timeout": settings.database_pool_timeout,
    }
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        if not memory:
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
        engine = create_async_engine(
            url,
            echo=settings.database_echo,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            **({} if memory else pool),
        )
        _configure_sqlite(engine, settings, begin="BEGIN IMMEDIATE" if writer else "BEGIN")
        return engine

    server_settings = {"timezone": "UTC", "application_name": f"tutorapp-{name}"}
    if settings.database_lock_timeout_ms and not settings.database_pgbouncer:
        # pgBouncer refuses other startup parameters: set it on the role there.
        server_settings["lock_timeout"] = str(settings.database_lock_timeout_ms)
    connect_args: dict[str, Any] = {
        "server_settings": server_settings, "timeout": settings.database_connect_timeout,
    }
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
        url, echo=settings.database_echo, pool_pre_ping=True, connect_args=connect_args, **pool
    )


class Database:
    """The primary engine plus read engines (replicas on PostgreSQL)."""

    def __init__(
        self, settings: Settings, *, name: str = "web", pool_size: int | None = None,
        max_overflow: int | None = None,
    ) -> None:
        """`name`: who connects (web, worker, cli: the `application_name`); pool sizes
        default to the web process's settings."""
        self.settings = settings
        self.disk_full_at: float | None = None  # monotonic time a write last hit a full disk
        self.primary = create_engine(settings, settings.database_url, writer=True, name=name,
                                     pool_size=pool_size, max_overflow=max_overflow)
        if settings.database_replica_urls:
            self.replicas = [
                create_engine(settings, u, name=name, pool_size=pool_size,
                              max_overflow=max_overflow)
                for u in settings.database_replica_urls
            ]
        elif settings.is_sqlite:
            self.replicas = [
                create_engine(settings, settings.database_url, writer=False, name=name,
                              pool_size=pool_size, max_overflow=max_overflow)
            ]
        else:
            self.replicas = [self.primary]
        self._sessions = async_sessionmaker(self.primary, expire_on_commit=False)
        self._request_sessions = async_sessionmaker(
            self.primary.execution_options(**{LAZY_LOCK: True}), expire_on_commit=False
        )
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
    async def unit_of_work(self, *, lazy_lock: bool = False) -> AsyncIterator[AsyncSession]:
        """Commit on success, roll back on error, then run the after-commit callbacks.

        `lazy_lock` (requests): on SQLite, take the write lock at the first write or
        locking read instead of at the first statement."""
        async with (self._request_sessions if lazy_lock else self._sessions)() as session:
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
            self.disk_full_at = None  # a commit went through: there is room again
            await _run_after_commit(session)

    def note_disk_full(self) -> None:
        """A write failed for lack of disk space: readiness reports it until a commit
        succeeds again."""
        self.disk_full_at = time.monotonic()

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


def insert_for(session: AsyncSession, table: Any) -> Any:
    """`INSERT` for the session's dialect, with `on_conflict_do_nothing` /
    `on_conflict_do_update` (PostgreSQL and SQLite spell them alike)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def get_database(request: Request) -> Database:
    return request.app.state.database


def rows_changed(result: Result[Any]) -> int:
    """How many rows an executed INSERT/UPDATE/DELETE changed. `execute` returns a
    `CursorResult` for those (typed only as `Result`); a query has no such count."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} has no row count: not an INSERT/UPDATE/DELETE")
    return result.rowcount


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).unit_of_work(lazy_lock=True) as session:
        yield session


async def _request_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).read_session() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client
# never sees success for a transaction that then failed to commit.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(_request_read_session, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_database)]


# --- contention and outages ---------------------------------------------------------

# PostgreSQL SQLSTATEs: retry once in the service / answer 503 "busy" / 503 "unavailable".
RETRY_ONCE = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
BUSY = RETRY_ONCE | {"55P03", "57014"}  # lock_timeout ran out, statement_timeout
UNAVAILABLE_CLASSES = ("08", "53", "57P")  # connection, insufficient resources, shutdown
BUSY_RETRY_AFTER = 1
UNAVAILABLE_RETRY_AFTER = 5


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` once more after a deadlock or serialization failure. The attempt
    must run in a savepoint (`session.begin_nested()`), so the failure rolled back only
    its own work; a second failure propagates (503 with Retry-After)."""
    try:
        return await attempt()
    except sa_exc.DBAPIError as exc:
        if sqlstate(exc) not in RETRY_ONCE:
            raise
        log.warning("retrying after a transient database failure", sqlstate=sqlstate(exc))
    return await attempt()


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 a driver or pool error stands for, or None when it is a bug."""
    if isinstance(exc, ServiceUnavailable):
        return exc
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return ServiceUnavailable(
            "Every database connection is busy: try again shortly.",
            retry_after=BUSY_RETRY_AFTER, cause="database-busy",
        )
    if isinstance(exc, sa_exc.DBAPIError):
        code = sqlstate(exc)
        message = str(getattr(exc, "orig", exc)).lower()
        if code == "53100" or "database or disk is full" in message:
            return ServiceUnavailable(
                "The database's disk is full: nothing was saved. Try again later.",
                retry_after=UNAVAILABLE_RETRY_AFTER, cause="disk-full",
            )
        if code in BUSY or "database is locked" in message or "database table is locked" in message:
            return ServiceUnavailable(
                "The database is busy with other changes: try again shortly.",
                retry_after=BUSY_RETRY_AFTER, cause="database-busy",
            )
        sqlite_down = isinstance(exc.orig, sqlite3.Error) and any(
            m in message for m in ("unable to open", "disk i/o error", "readonly database")
        )
        driver_down = not isinstance(exc.orig, sqlite3.Error) and code is None and isinstance(
            exc, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )  # asyncpg: the connection closed or could not be made
        if exc.connection_invalidated or (code or "").startswith(UNAVAILABLE_CLASSES) or (
            sqlite_down or driver_down
        ):
            return ServiceUnavailable(
                "The database cannot be reached: try again shortly.",
                retry_after=UNAVAILABLE_RETRY_AFTER, cause="database-unavailable",
            )
        return None
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        # asyncpg raises these unwrapped while connecting (server down, name unknown).
        return ServiceUnavailable(
            "The database cannot be reached: try again shortly.",
            retry_after=UNAVAILABLE_RETRY_AFTER, cause="database-unavailable",
        )
    return None


async def _unavailable_response(request: Request, exc: Exception) -> Response:
    problem = unavailable(exc)
    if problem is None:
        raise exc  # a bug: the request-context middleware logs it and answers 500
    database: Database | None = getattr(request.app.state, "database", None)
    if database is not None and problem.extra["cause"] == "disk-full":
        database.note_disk_full()
    log.warning("dependency unavailable", cause=problem.extra["cause"], error=str(exc)[:300])
    return render_problem(
        request, problem.status, headers=problem.headers, type=problem.type,
        title=problem.title, detail=problem.detail, **problem.extra,
    )


def install_database_errors(app: FastAPI) -> None:
    """Driver, pool and connection errors answer 503 with Retry-After, never 500."""
    for kind in (sa_exc.DBAPIError, sa_exc.TimeoutError, ConnectionError, TimeoutError,
                 socket.gaierror):
        app.add_exception_handler(kind, _unavailable_response)
