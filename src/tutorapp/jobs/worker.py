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

from sqlalchemy.engine import make_url

from tutorapp.config import Settings
from tutorapp.jobs import engine

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


async def start_embedded(settings: Settings) -> bool:
    """Called by the web app at startup: run workflows here when configured to."""
    engine.load_functions()
    engine.runtime.configure(settings)
    if not settings.jobs_run_in_serve:
        return False
    if settings.jobs_system_database_url.startswith("sqlite") and not _take_sqlite_lock(settings):
        log.info("another process runs the jobs of this SQLite database; enqueue only")
        return False
    global _embedded
    try:
        await asyncio.to_thread(engine.start_worker, settings)
    except BaseException:
        _release_sqlite_lock()
        raise
    _embedded = True
    return True


async def stop_embedded(drain_seconds: int = 5) -> None:
    global _embedded
    if _embedded:
        await asyncio.to_thread(engine.stop_worker, drain_seconds=drain_seconds)
        engine.release_event_loop_executor()
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
    executor = engine.start_worker(settings, executor_id=executor_id)
    print(f"tutorapp worker {executor} (pid {os.getpid()}) running "
          f"{len(engine.FUNCTIONS)} functions", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        engine.stop_worker(drain_seconds=drain_seconds)
        engine.runtime.close()
        _release_sqlite_lock()
