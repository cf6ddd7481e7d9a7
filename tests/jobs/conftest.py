"""A DBOS worker launched per test on an emptied system database, then destroyed,
so no workflow, queue or schedule leaks from one test into the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from dbos import DBOS
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.waiting import deadline
from tutorapp.config import Settings
from tutorapp.jobs import worker as jobs_worker
from tutorapp.jobs.runtime import ensure_system_database, runtime

FAST = {
    "jobs_poll_interval_seconds": 0.05,
    "jobs_step_retry_interval_seconds": 0.01,
    "jobs_step_max_attempts": 3,
}


@pytest.fixture
def jobs_settings(database_url: str) -> Settings:
    return make_settings(database_url, **FAST)


def reset_system_database(settings: Settings) -> None:
    ensure_system_database(settings)
    DBOS.reset_system_database(
        system_database_url=settings.jobs_system_database_url,
        schema=settings.jobs_database_schema, truncate=True,
    )


class Worker:
    """Start and stop the in-process DBOS worker; wait for runs."""

    def __init__(self, make: Callable[..., Settings]) -> None:
        self.make = make
        self.settings: Settings | None = None

    async def start(self, **overrides: Any) -> Settings:
        self.settings = self.make(**overrides)
        await asyncio.to_thread(jobs_worker.start_worker, self.settings)
        return self.settings

    async def stop(self, drain_seconds: int | None = None) -> None:
        """Let a run still in flight (a cron tick, say) end first, by default: destroying
        DBOS under it would leave an unfinished coroutine behind for the next test to
        trip on. `drain_seconds=0` kills the runs in flight, as a crash would."""
        if drain_seconds is None:
            drain_seconds = round(deadline(10))
        await asyncio.to_thread(jobs_worker.stop_worker, drain_seconds=drain_seconds)
        jobs_worker.release_event_loop_executor()

    async def result(self, workflow_id: str, timeout: float = 30) -> Any:
        """The run's result once it ended (within the scaled `timeout`)."""
        handle = await DBOS.retrieve_workflow_async(workflow_id)
        return await asyncio.wait_for(handle.get_result(polling_interval_sec=0.02),
                                      deadline(timeout))

    async def status(self, workflow_id: str) -> str:
        handle = await DBOS.retrieve_workflow_async(workflow_id, existing_workflow=False)
        return (await handle.get_status()).status


@pytest.fixture
async def worker(app: FastAPI, database_url: str) -> AsyncIterator[Worker]:
    """An un-started worker (`await worker.start(**settings overrides)`)."""
    base = make_settings(database_url, **FAST)
    await asyncio.to_thread(reset_system_database, base)
    harness = Worker(lambda **o: make_settings(database_url, **(FAST | o)))
    try:
        yield harness
    finally:
        await harness.stop()
        runtime.configure(app.state.settings)


@pytest.fixture
async def running(worker: Worker) -> Worker:
    await worker.start()
    return worker
