"""Worker leases: heartbeats in `job_workers`, and recovery of dead workers' runs.

Each worker renews its lease every third of `TUTORAPP_JOBS_RECOVERY_LEASE_SECONDS`.
A worker whose heartbeat is older than the lease (it was killed, or its machine
died), or that stopped, is claimed by exactly one survivor (a conditional UPDATE),
which asks DBOS to re-enqueue the dead executor's PENDING workflows. DBOS makes
that idempotent: a workflow is re-enqueued only while it still belongs to the dead
executor, and the first worker to dequeue it owns it. Completed steps are not run
again; the step that was in flight when the worker died runs again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from datetime import timedelta

from dbos import DBOS
from sqlalchemy import or_, select, update

from tutorapp.config import Settings
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.jobs.models import JobWorker

log = logging.getLogger("tutorapp.jobs.lease")


def run(settings: Settings, executor_id: str, stop: threading.Event) -> None:
    asyncio.run(_loop(settings, executor_id, stop))


async def _loop(settings: Settings, executor_id: str, stop: threading.Event) -> None:
    database = Database(settings)
    interval = max(0.1, settings.jobs_recovery_lease_seconds / 3)
    try:
        await register(database, executor_id)
        while not stop.is_set():
            try:
                await heartbeat(database, executor_id)
                for dead in await claim_expired(
                    database, executor_id, settings.jobs_recovery_lease_seconds
                ):
                    handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [dead])
                    log.warning("worker %s recovered %d workflows of dead worker %s",
                                executor_id, len(handles), dead)
            except Exception:
                log.exception("lease upkeep failed; retrying")
            await asyncio.to_thread(stop.wait, interval)
        await mark_stopped(database, executor_id)
    finally:
        await database.dispose()


async def register(database: Database, executor_id: str) -> None:
    now = utcnow()
    async with database.unit_of_work() as session:
        worker = await session.get(JobWorker, executor_id)
        if worker is None:
            worker = JobWorker(executor_id=executor_id, hostname="", pid=0)
            session.add(worker)
        worker.hostname = socket.gethostname()
        worker.pid = os.getpid()
        worker.started_at = worker.heartbeat_at = now
        worker.stopped_at = worker.recovered_at = worker.recovered_by = None


async def heartbeat(database: Database, executor_id: str) -> None:
    async with database.unit_of_work() as session:
        result = await session.execute(
            update(JobWorker)
            .where(JobWorker.executor_id == executor_id, JobWorker.recovered_at.is_(None))
            .values(heartbeat_at=utcnow())
        )
    if result.rowcount == 0:
        log.error("worker %s lost its lease (another worker recovered its runs); "
                  "raise TUTORAPP_JOBS_RECOVERY_LEASE_SECONDS", executor_id)


async def claim_expired(database: Database, executor_id: str, lease_seconds: float) -> list[str]:
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    async with database.unit_of_work() as session:
        candidates = (await session.scalars(
            select(JobWorker.executor_id).where(
                JobWorker.executor_id != executor_id,
                JobWorker.recovered_at.is_(None),
                or_(JobWorker.heartbeat_at < cutoff, JobWorker.stopped_at.is_not(None)),
            )
        )).all()
        claimed = []
        for candidate in candidates:
            result = await session.execute(
                update(JobWorker)
                .where(JobWorker.executor_id == candidate, JobWorker.recovered_at.is_(None))
                .values(recovered_at=utcnow(), recovered_by=executor_id)
            )
            if result.rowcount == 1:
                claimed.append(candidate)
    return claimed


async def mark_stopped(database: Database, executor_id: str) -> None:
    async with database.unit_of_work() as session:
        await session.execute(
            update(JobWorker).where(JobWorker.executor_id == executor_id)
            .values(stopped_at=utcnow())
        )
