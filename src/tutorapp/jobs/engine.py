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

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import logging
import os
import pkgutil
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from dbos import DBOS, DBOSClient, DBOSConfig, EnqueueOptions, StepOptions
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.core.db import Database, after_commit, insert_for
from tutorapp.core.errors import PermanentFailure
from tutorapp.core.time import utcnow
from tutorapp.metering import service as usage

log = logging.getLogger("tutorapp.jobs")

T = TypeVar("T")
APP_NAME = "tutorapp"
CLIENT_POOL_SIZE = 2  # connections of a process's enqueue-only DBOSClient


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` runs start within any `period` seconds (across all workers)."""

    limit: int
    period: float


RateLimitSpec = RateLimit | Callable[[Settings], RateLimit | None] | None


@dataclass
class JobFunction:
    name: str
    workflow: Callable[..., Awaitable[Any]]
    events: tuple[str, ...] = ()
    cron: str | None = None
    concurrency: int | Callable[[Settings], int | None] | None = None
    rate_limit: RateLimitSpec = None

    def max_concurrency(self, settings: Settings) -> int | None:
        if callable(self.concurrency):
            return self.concurrency(settings)
        return self.concurrency

    def limiter(self, settings: Settings) -> RateLimit | None:
        if callable(self.rate_limit):
            return self.rate_limit(settings)
        return self.rate_limit


FUNCTIONS: dict[str, JobFunction] = {}
_step_count: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "tutorapp_job_steps", default=None
)


def function(
    name: str,
    *,
    on: str | Sequence[str] = (),
    cron: str | None = None,
    concurrency: int | Callable[[Settings], int | None] | None = 10,
    rate_limit: RateLimitSpec = None,
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Declare a background function `domain.verb`.

    `on`: event names that start it; it is then called with the event
    (`{"name", "id", "data"}`). `cron`: a cron expression (UTC; 5 or 6 fields); it
    is then called with the scheduled time. Otherwise it is started by `enqueue`
    with the arguments given there (JSON-like values: ids, not objects).
    """
    events = (on,) if isinstance(on, str) else tuple(on)
    if name in FUNCTIONS:
        raise ValueError(f"job function {name!r} is declared twice")

    def decorate(body: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        if cron is not None:

            async def run(scheduled_at: datetime, _context: Any = None) -> T:
                return await _counted(body, scheduled_at)
        else:

            async def run(*args: Any, **kwargs: Any) -> T:
                return await _counted(body, *args, **kwargs)

        functools.update_wrapper(run, body)
        workflow = DBOS.workflow(name=name)(run)
        FUNCTIONS[name] = JobFunction(
            name=name, workflow=workflow, events=events, cron=cron,
            concurrency=concurrency, rate_limit=rate_limit,
        )
        return workflow

    return decorate


async def _counted(body: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run a function body, then meter it: one run plus each step it executed
    (replayed steps are not executed again, so they do not count)."""
    counter = [1]
    token = _step_count.set(counter)
    try:
        return await body(*args, **kwargs)
    except asyncio.CancelledError:
        counter.clear()  # the worker stops under it: the run is recovered and metered then
        raise
    finally:
        _step_count.reset(token)
        if counter:
            await _meter(counter[0])


async def _meter(steps: int) -> None:
    try:
        async with runtime.database().unit_of_work() as session:
            await usage.add_steps(session, steps)
    except Exception:  # metering must never fail a job
        log.exception("could not record job step usage")


def describe_error(exc: BaseException) -> str:
    """`Type: message`; for a step out of retries, with the last attempt's error."""
    text = f"{type(exc).__name__}: {exc}"
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        last = errors[-1]
        text += f" (last: {type(last).__name__}: {last})"
    return text[:2000]


def _should_retry(exc: BaseException) -> bool:
    return not isinstance(exc, PermanentFailure)


async def step(
    name: str, fn: Callable[..., Awaitable[T]], *args: Any, retry: bool = False,
    max_attempts: int | None = None,
) -> T:
    """Run `fn(*args)` as a checkpointed step of the current function.

    `retry=True` for steps that call the outside: exponential backoff
    (`TUTORAPP_JOBS_STEP_RETRY_INTERVAL_SECONDS`, doubling) up to
    `TUTORAPP_JOBS_STEP_MAX_ATTEMPTS` attempts; a `PermanentFailure` stops at once.
    The step's return value is stored, so it must be JSON-like.
    """
    settings = runtime.settings

    async def counted(*a: Any) -> T:
        counter = _step_count.get()
        if counter is not None:
            counter[0] += 1
        return await fn(*a)

    options: StepOptions = {"name": name}
    if retry:
        options.update(
            retries_allowed=True,
            max_attempts=max_attempts or settings.jobs_step_max_attempts,
            interval_seconds=settings.jobs_step_retry_interval_seconds,
            backoff_rate=2.0,
            should_retry=_should_retry,
        )
    return await DBOS.run_step_async(options, counted, *args)


def load_functions() -> dict[str, JobFunction]:
    """Import every domain's `jobs` module, so each declares its functions."""
    import tutorapp

    for module in pkgutil.iter_modules(tutorapp.__path__):
        if not module.ispkg or module.name == "jobs":
            continue
        try:
            importlib.import_module(f"tutorapp.{module.name}.jobs")
        except ModuleNotFoundError as exc:
            if exc.name != f"tutorapp.{module.name}.jobs":
                raise
    importlib.import_module("tutorapp.jobs.builtin")
    return FUNCTIONS


def subscribers(event_name: str) -> list[str]:
    return [f.name for f in FUNCTIONS.values() if event_name in f.events]


def workflow_id(function_name: str, key: str) -> str:
    return f"{function_name}:{key}"


# --- the runtime: one per process ------------------------------------------------


@dataclass
class Runtime:
    settings: Settings = field(default_factory=lambda: Settings())
    launched: bool = False
    executor_id: str | None = None
    _client: DBOSClient | None = None
    _client_url: str | None = None
    _databases: dict[int, tuple[asyncio.AbstractEventLoop, Database, asyncio.Task[None]]] = (
        field(default_factory=dict)
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lease_stop: threading.Event | None = None
    _lease_thread: threading.Thread | None = None

    def configure(self, settings: Settings) -> None:
        """Use these settings to enqueue (every process calls this at start)."""
        with self._lock:
            if self._client is not None and self._client_url != settings.jobs_system_database_url:
                self._client.destroy()
                self._client = None
            self.settings = settings

    def client(self) -> DBOSClient:
        with self._lock:
            if self._client is None:
                url = self.settings.jobs_system_database_url
                ensure_system_database(self.settings)
                engine = system_database_engine(self.settings)
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
            if self._client is not None:
                self._client.destroy()
                self._client = None


async def _dispose_when_cancelled(database: Database) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await database.dispose()


async def _close_database(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


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


def dispose_system_database_engines() -> None:
    while _sqlite_engines:
        _sqlite_engines.popitem()[1].dispose()


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


def start_worker(settings: Settings, *, executor_id: str | None = None) -> str:
    """Launch DBOS in this process: run workflows until `stop_worker()`.

    Blocking (DBOS launches synchronously); from async code call it through
    `asyncio.to_thread` so workflows run on DBOS's own event loop.
    """
    if runtime.launched:
        raise RuntimeError("a jobs worker already runs in this process")
    load_functions()
    runtime.configure(settings)
    executor = executor_id or default_executor_id(settings)
    ensure_system_database(settings)
    DBOS(config=dbos_config(settings, executor))
    try:
        DBOS.launch()
        # The release started last takes new (unversioned) work, also when it is an
        # older one coming back (a rollback): DBOS would keep the newest name in charge.
        DBOS.set_latest_application_version(application_version(settings))
        for fn in FUNCTIONS.values():
            limiter = fn.limiter(settings)
            DBOS.register_queue(
                fn.name,
                global_concurrency=fn.max_concurrency(settings),
                limiter={"limit": limiter.limit, "period": limiter.period} if limiter else None,
                polling_interval_sec=settings.jobs_poll_interval_seconds,
                on_conflict="always_update",
            )
        DBOS.apply_schedules([
            {"schedule_name": fn.name, "workflow_fn": fn.workflow, "schedule": fn.cron,
             "queue_name": fn.name}
            for fn in FUNCTIONS.values() if fn.cron
        ])
    except BaseException:
        DBOS.destroy()
        raise
    runtime.launched = True
    runtime.executor_id = executor
    from tutorapp.jobs import lease

    runtime._lease_stop = threading.Event()
    runtime._lease_thread = threading.Thread(
        target=lease.run,
        args=(settings, executor, application_version(settings), runtime._lease_stop),
        name="tutorapp-jobs-lease", daemon=True,
    )
    runtime._lease_thread.start()
    log.info("jobs worker %s started (%d functions)", executor, len(FUNCTIONS))
    return executor


def stop_worker(*, drain_seconds: int = 0) -> None:
    """Stop running workflows here, letting those in flight finish for up to
    `drain_seconds`. Unfinished ones stay PENDING and are recovered (by this executor
    id on restart, or by another worker once this one is marked stopped, which happens
    only after the drain, so no one takes over a run that is still finishing here)."""
    if not runtime.launched:
        return
    if drain_seconds and not _has_runs_in_flight(runtime.executor_id):
        drain_seconds = 0  # DBOS's drain waits at least a second
    DBOS.destroy(workflow_completion_timeout_sec=drain_seconds)
    # Close the pools of job code that ran on loops that still run (DBOS's own loop
    # closed them as it shut down).
    for loop, _database, task in list(runtime._databases.values()):
        if loop.is_running() and not task.done():
            try:
                asyncio.run_coroutine_threadsafe(_close_database(task), loop).result(timeout=10)
            except Exception:
                log.exception("could not close a job database pool")
    runtime._databases.clear()
    if runtime._lease_stop is not None:
        runtime._lease_stop.set()
    if runtime._lease_thread is not None:
        runtime._lease_thread.join(timeout=30)
    runtime.launched = False
    runtime.executor_id = None


def _has_runs_in_flight(executor_id: str | None) -> bool:
    try:
        return bool(runtime.client().list_workflows(
            status="PENDING", executor_id=executor_id, load_input=False, load_output=False,
            limit=1))
    except Exception:
        return True


def release_event_loop_executor() -> None:
    """DBOS lends its thread pool to the event loops that call its async API; once
    DBOS is destroyed that pool is shut down, so give the current loop a fresh one."""
    from concurrent.futures import ThreadPoolExecutor

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


# --- enqueueing -------------------------------------------------------------------


async def enqueue(
    function_name: str,
    *args: Any,
    key: str | None = None,
    delay: float | None = None,
    at: datetime | None = None,
) -> str:
    """Start a function now (or at `at` / after `delay` seconds); returns the run id.

    With a `key`, the run id is `<function>:<key>` and enqueueing the same key again
    returns the existing run: it never runs twice. Called from a function's body (not
    from inside a step), the enqueue is checkpointed with the run.
    """
    if at is not None:
        delay = max(0.0, (at - utcnow()).total_seconds())
    options: EnqueueOptions = {"workflow_name": function_name, "queue_name": function_name}
    if key is not None:
        options["workflow_id"] = workflow_id(function_name, key)
    if delay:
        options["delay_seconds"] = delay
    if DBOS.workflow_id is not None and DBOS.step_id is None:
        # From a function's body: DBOS records the enqueue in the run's history (a
        # child run), so a re-run after a crash replays it: never lost, never doubled.
        # A failure raises and fails the run, visibly, instead of being swallowed.
        handle = await DBOS.enqueue_workflow_with_options_async(options, *args)
        return handle.get_workflow_id()
    # Elsewhere (a request, the CLI, inside a step) through the client: the same row.
    client = runtime._client or await asyncio.to_thread(runtime.client)
    handle = await client.enqueue_async(options, *args)
    return handle.get_workflow_id()


def enqueue_after_commit(
    session: AsyncSession, function_name: str, *args: Any, key: str,
    delay: float | None = None, at: datetime | None = None,
) -> None:
    """Enqueue once the session's transaction commits (never on rollback). A failure
    to enqueue is logged, not raised: the work is already committed, and each
    domain's sweep job picks up what was not started."""

    async def start() -> None:
        try:
            await enqueue(function_name, *args, key=key, delay=delay, at=at)
        except Exception:
            log.exception("could not enqueue %s (%s); its sweep will retry", function_name, key)

    after_commit(session, start)


# --- events -------------------------------------------------------------------------


async def emit(
    session: AsyncSession, name: str, payload: dict[str, Any], *, event_id: str
) -> bool:
    """Record domain event `name` in the caller's transaction; its functions start
    after commit. `event_id` is the idempotency key: the same (name, id) is stored
    and handled once. Returns False when the event was already recorded."""
    from tutorapp.jobs.models import JobEvent

    statement = (
        insert_for(session, JobEvent)
        .values(id=uuid.uuid4(), name=name, key=event_id, payload=payload)
        .on_conflict_do_nothing(index_elements=["name", "key"])
    )
    result = await session.execute(statement)
    if result.rowcount == 0:
        return False
    engine = session.bind

    async def dispatch() -> None:
        try:
            await dispatch_event(name, event_id, payload)
            async with AsyncSession(engine) as marker:
                await marker.execute(
                    update(JobEvent)
                    .where(JobEvent.name == name, JobEvent.key == event_id)
                    .values(dispatched_at=utcnow())
                )
                await marker.commit()
        except Exception:
            log.exception("could not dispatch event %s %s; jobs.dispatch will", name, event_id)

    after_commit(session, dispatch)
    return True


async def dispatch_event(name: str, event_id: str, payload: dict[str, Any]) -> list[str]:
    """Enqueue every function listening to the event (idempotent per function)."""
    event = {"name": name, "id": event_id, "data": payload}
    return [
        await enqueue(function_name, event, key=event_id)
        for function_name in subscribers(name)
    ]
