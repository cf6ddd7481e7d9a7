"""Where workflows run: inside `tutorapp serve` (embedded) or in `tutorapp worker`.

On SQLite one process per database file runs workflows (a DBOS system database on
SQLite serves one process): with `serve --workers N` the first process to take the
file lock `<jobs db>.lock` is the worker, the others only enqueue. On PostgreSQL
every `serve` process (unless `TUTORAPP_JOBS_EMBEDDED_WORKER=false`) and every
`tutorapp worker` process runs workflows, each under its own executor id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path
from typing import IO

from dbos import DBOS
from sqlalchemy.engine import make_url

from tutorapp.config import Settings
from tutorapp.jobs.registry import FUNCTIONS, load_functions
from tutorapp.jobs.runtime import (
    application_version,
    dbos_config,
    default_executor_id,
    ensure_system_database,
    runtime,
)

log = logging.getLogger("tutorapp.jobs.worker")
_lock_file: IO[str] | None = None
_embedded = False


def _take_sqlite_lock(settings: Settings) -> bool:
    """Hold an exclusive lock on `<jobs db>.lock` for the life of this process."""
    global _lock_file
    import fcntl

    database = make_url(settings.jobs_system_database_url).database or "var/jobs.db"
    path = Path(f"{database}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    _lock_file = handle
    return True


def _release_sqlite_lock() -> None:
    global _lock_file
    if _lock_file is not None:
        _lock_file.close()
        _lock_file = None


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
            # A cron function's workflow is `scheduled(scheduled_at, context)` (see `function`).
            {"schedule_name": fn.name, "workflow_fn": fn.workflow,  # type: ignore[typeddict-item]
             "schedule": fn.cron, "queue_name": fn.name}
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


async def _close_database(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def start_embedded(settings: Settings) -> bool:
    """Called by the web app at startup: run workflows here when configured to."""
    load_functions()
    runtime.configure(settings)
    if not settings.jobs_run_in_serve:
        return False
    if settings.jobs_system_database_url.startswith("sqlite") and not _take_sqlite_lock(settings):
        log.info("another process runs the jobs of this SQLite database; enqueue only")
        return False
    global _embedded
    try:
        await asyncio.to_thread(start_worker, settings)
    except BaseException:
        _release_sqlite_lock()
        raise
    _embedded = True
    return True


async def stop_embedded(drain_seconds: int = 5) -> None:
    global _embedded
    if _embedded:
        await asyncio.to_thread(stop_worker, drain_seconds=drain_seconds)
        release_event_loop_executor()
        _embedded = False
        _release_sqlite_lock()


def run_forever(settings: Settings, *, executor_id: str | None = None,
                drain_seconds: int = 10) -> None:
    """`tutorapp worker`: run workflows until SIGTERM/SIGINT, then drain and stop."""
    if settings.jobs_system_database_url.startswith("sqlite") and not _take_sqlite_lock(settings):
        raise SystemExit(
            "another process already runs the jobs of this SQLite database "
            "(use PostgreSQL to run several workers)"
        )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping the worker", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime.configure(settings, role="worker")
    executor = start_worker(settings, executor_id=executor_id)
    print(f"tutorapp worker {executor} (pid {os.getpid()}) running "
          f"{len(FUNCTIONS)} functions", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        stop_worker(drain_seconds=drain_seconds)
        runtime.close()
        _release_sqlite_lock()
