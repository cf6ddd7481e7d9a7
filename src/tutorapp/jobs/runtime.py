"""Durable background functions on DBOS Transact, with a small Inngest-like surface.

A *function* is a DBOS workflow with its own queue (named like the function,
`domain.verb`): the queue carries the function's concurrency limit and, where it
calls a vendor, its rate limit. A function runs because

- a domain event it listens to was emitted (`emit(session, "booking.confirmed",
  payload, event_id=...)`): the event is stored with the transaction that caused it
  and its functions are enqueued after commit, each under the workflow id
  `<function>:<event id>`, so one event never runs a function twice;
- a cron schedule fired (DBOS schedules; one run per tick across all workers);
- code enqueued it directly (`enqueue("email.deliver", message_id, key=...)`),
  possibly for later (`delay=` / `at=`): DBOS keeps it DELAYED until then.

Inside a function, `step(name, fn, *args, retry=True)` runs `fn` as a checkpointed
DBOS step: once it returned, a re-run of the workflow (after a crash) replays its
result instead of calling it again. Steps that call the outside retry with
exponential backoff; a `PermanentFailure` is not retried. A function whose step
ran out of retries ends in DBOS status ERROR and stays listed (`tutorapp jobs`).

Processes: a *worker* launches DBOS and runs workflows. Any other process (a web
process in scale mode, the CLI) enqueues through a `DBOSClient` on the same system
database. Each worker has an executor id and a lease renewed by heartbeats in
`job_workers`; when a lease runs out, a surviving worker puts the dead one's
unfinished workflows back on their queues (`lease.py`), also when the dead worker
ran an older release: every run records the application version of the worker that
runs it (`TUTORAPP_JOBS_APPLICATION_VERSION`, one per release).
"""

import asyncio
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig

from tutorapp.config import Settings
from tutorapp.core.db import Database

log = logging.getLogger("tutorapp.jobs")

APP_NAME = "tutorapp"
CLIENT_POOL_SIZE = 2  # connections of a process's enqueue-only DBOSClient


@dataclass
class Runtime:
    settings: Settings = field(default_factory=lambda: Settings())
    launched: bool = False
    executor_id: str | None = None
    role: str = "web"  # the process, in PostgreSQL's application_name: web, worker, cli
    _client: DBOSClient | None = None
    _client_engine: Any | None = None
    _client_url: str | None = None
    _databases: dict[int, tuple[asyncio.AbstractEventLoop, Database, asyncio.Task[None]]] = (
        field(default_factory=dict)
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lease_stop: threading.Event | None = None
    _lease_thread: threading.Thread | None = None

    def configure(self, settings: Settings, *, role: str | None = None) -> None:
        """Use these settings to enqueue (every process calls this at start)."""
        with self._lock:
            if self._client is not None and self._client_url != settings.jobs_system_database_url:
                self._destroy_client()
            self.settings = settings
            self.role = role or self.role

    def client(self) -> DBOSClient:
        with self._lock:
            if self._client is None:
                url = self.settings.jobs_system_database_url
                ensure_system_database(self.settings)
                engine = system_database_engine(self.settings)
                if engine is None:
                    engine = self._client_engine = client_engine(self.settings, self.role)
                self._client = DBOSClient(
                    system_database_url=None if engine is not None else url,
                    system_database_engine=engine,
                    dbos_system_schema=self.settings.jobs_database_schema,
                    system_database_pool_size=CLIENT_POOL_SIZE,
                    application_name=APP_NAME,
                )
                self._client_url = url
            return self._client

    def database(self) -> Database:
        """The application database, for job code running on the current event loop.

        Its pools close on that loop: when the loop shuts down (DBOS cancels every task
        of its loop as it is destroyed, after the drain), or at `stop_worker`."""
        loop = asyncio.get_running_loop()
        entry = self._databases.get(id(loop))
        if entry is None or entry[0] is not loop:
            database = Database(self.settings, name="worker",
                                pool_size=self.settings.jobs_pool_size, max_overflow=0)
            entry = (loop, database, loop.create_task(_dispose_when_cancelled(database)))
            self._databases[id(loop)] = entry
        return entry[1]

    def close(self) -> None:
        with self._lock:
            self._destroy_client()

    def _destroy_client(self) -> None:
        if self._client is not None:
            self._client.destroy()
            self._client = None
        if self._client_engine is not None:  # DBOS leaves an engine it was given
            self._client_engine.dispose()
            self._client_engine = None


async def _dispose_when_cancelled(database: Database) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await database.dispose()


runtime = Runtime()
_migrated: set[str] = set()


def ensure_system_database(settings: Settings) -> None:
    """Create or migrate DBOS's system database (once per process and URL)."""
    url = settings.jobs_system_database_url
    if url in _migrated:
        return
    if url.startswith("sqlite"):
        from pathlib import Path

        from sqlalchemy.engine import make_url

        path = make_url(url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    DBOS.migrate(url, schema=settings.jobs_database_schema)
    _migrated.add(url)


_sqlite_engines: dict[str, Any] = {}


def system_database_engine(settings: Settings) -> Any | None:
    """For a SQLite system database, our own engine: WAL journal and
    `synchronous=NORMAL` (DBOS's default engine keeps a rollback journal and syncs
    every commit, which caps a worker at a few dozen writes a second), writers
    serialized with `BEGIN IMMEDIATE` and a long busy timeout, as DBOS does.
    None on PostgreSQL (DBOS's engine)."""
    url = settings.jobs_system_database_url
    if not url.startswith("sqlite"):
        return None
    engine = _sqlite_engines.get(url)
    if engine is None:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"check_same_thread": False},
                                  pool_size=10, max_overflow=10)

        @sa.event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = "IMMEDIATE"
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        _sqlite_engines[url] = engine
    return engine


def client_engine(settings: Settings, role: str) -> Any:
    """The enqueue-only client's engine on PostgreSQL: DBOS's own would connect as
    `dbos_transact_client`; this one names the process (`tutorapp-web`, `-worker`,
    `-cli`) like every other engine, with DBOS's client pool and idle-in-transaction
    timeout."""
    import sqlalchemy as sa

    url = sa.make_url(settings.jobs_system_database_url).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, pool_size=CLIENT_POOL_SIZE, max_overflow=0, pool_timeout=30,
                            pool_pre_ping=True, connect_args={
                                "application_name": f"tutorapp-{role}",
                                "connect_timeout": max(1, round(settings.database_connect_timeout)),
                                "options": "-c idle_in_transaction_session_timeout=60000",
                            })


def default_executor_id(settings: Settings) -> str:
    if settings.jobs_executor_id:
        return settings.jobs_executor_id
    if settings.is_sqlite:
        return "local"  # one worker per SQLite file: a restart recovers its own work
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def application_version(settings: Settings) -> str:
    """The release recorded on each run. DBOS dequeues a run only on a worker of the
    version it was started on; `lease.py` moves a dead worker's runs to the new one."""
    import tutorapp

    return settings.jobs_application_version or f"{APP_NAME}-{tutorapp.__version__}"


def dbos_config(settings: Settings, executor_id: str) -> DBOSConfig:
    config: DBOSConfig = {
        "name": APP_NAME,
        "application_version": application_version(settings),
        "system_database_url": settings.jobs_system_database_url,
        "dbos_system_schema": settings.jobs_database_schema,
        "executor_id": executor_id,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.1,
        "scheduler_polling_interval_sec": 5.0,
    }
    engine = system_database_engine(settings)
    if engine is not None:
        config["system_database_engine"] = engine
    else:
        config["sys_db_pool_size"] = settings.jobs_pool_size
        config["db_engine_kwargs"] = {"connect_args": {
            "application_name": "tutorapp-worker",
            "connect_timeout": max(1, round(settings.database_connect_timeout)),
        }}
    return config
