"""Worker leases: heartbeats in `job_workers`, and recovery of dead workers' runs.

Each worker renews its lease every third of `TUTORAPP_JOBS_RECOVERY_LEASE_SECONDS`.
A worker whose heartbeat is older than the lease (it was killed, or its machine
died), or that stopped, is claimed by exactly one survivor (a conditional UPDATE
sets `recovered_by`), which hands the dead worker's PENDING runs back to the queues
through DBOS's public workflow API:

- a run of this worker's own application version is *resumed* (back on its queue,
  its completed steps kept);
- a run of another version (the dead worker ran the previous release) is marked,
  cancelled and *rewound* onto this version at its first unfinished step: DBOS only
  lets a worker dequeue runs of its own version, and our functions are written to be
  run again (they take ids and reload data), so the new release finishes them.

Either way each run continues under its own id, so it completes once; completed
steps are not run again, the step in flight when the worker died runs again. The
dead worker is marked `recovered_at` only once none of its runs is left PENDING (or
cancelled by an interrupted recovery); until then the claim is retried on every
heartbeat. At start, a worker also moves its own executor id's runs of older
versions (a restart after a deploy; DBOS itself recovers the same version's).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from dbos import DBOSClient, WorkflowStatus
from sqlalchemy import or_, select, update

from tutorapp.config import Settings
from tutorapp.core.db import Database, rows_changed
from tutorapp.core.time import utcnow
from tutorapp.jobs.models import JobWorker

log = logging.getLogger("tutorapp.jobs.lease")
# Set on a run before recovery cancels it to rewind it: a crash between the two is
# finished by the next pass (a cancelled run without it was cancelled by an operator).
RECOVERING = "tutorapp_recovering_from"


def run(settings: Settings, executor_id: str, version: str, stop: threading.Event) -> None:
    asyncio.run(_loop(settings, executor_id, version, stop))


async def _loop(settings: Settings, executor_id: str, version: str,
                stop: threading.Event) -> None:
    from tutorapp.jobs.runtime import runtime

    database = Database(settings, name="worker", pool_size=1, max_overflow=0)
    interval = max(0.1, settings.jobs_recovery_lease_seconds / 3)
    try:
        await register(database, executor_id)
        client = await asyncio.to_thread(runtime.client)
        try:
            moved = await asyncio.to_thread(recover_runs, client, executor_id, version,
                                            other_versions_only=True)
            if moved:
                log.warning("worker %s moved %d of its runs from older versions to %s",
                            executor_id, moved, version)
        except Exception:
            log.exception("could not move this worker's runs of older versions")
        while not stop.is_set():
            try:
                await heartbeat(database, executor_id)
                lease = settings.jobs_recovery_lease_seconds
                for dead in await claim_expired(database, executor_id, lease):
                    await recover_worker(database, client, dead, executor_id, version)
            except Exception:
                log.exception("lease upkeep failed; retrying")
            await asyncio.to_thread(stop.wait, interval)
        await mark_stopped(database, executor_id)
    finally:
        await database.dispose()


async def recover_worker(database: Database, client: DBOSClient, dead: str, executor_id: str,
                         version: str) -> bool:
    """Hand the dead worker's runs back; mark it recovered once none is left."""
    moved = await asyncio.to_thread(recover_runs, client, dead, version)
    left = await asyncio.to_thread(_unfinished, client, dead)
    log.warning("worker %s recovered %d runs of dead worker %s (%d left)",
                executor_id, moved, dead, len(left))
    if left:
        return False
    await mark_recovered(database, dead, executor_id)
    return True


def _unfinished(client: DBOSClient, executor: str) -> list[WorkflowStatus]:
    """PENDING runs of `executor`, and runs an interrupted recovery left cancelled."""
    pending = client.list_workflows(status="PENDING", executor_id=executor,
                                    load_input=False, load_output=False)
    cancelled = client.list_workflows(status="CANCELLED", executor_id=executor,
                                      load_input=False, load_output=False)
    halfway = [run for run in cancelled if (run.attributes or {}).get(RECOVERING) == executor]
    return [*pending, *halfway]


def recover_runs(client: DBOSClient, executor: str, version: str, *,
                 other_versions_only: bool = False) -> int:
    """Put `executor`'s unfinished runs back on their queues for this `version`."""
    moved = 0
    for run in _unfinished(client, executor):
        if other_versions_only and run.app_version == version:
            continue
        try:
            _recover(client, run, executor, version)
            moved += 1
        except Exception:
            log.exception("could not recover run %s of %s", run.workflow_id, executor)
    return moved


def _recover(client: DBOSClient, run: WorkflowStatus, executor: str, version: str) -> None:
    queue = run.queue_name or run.name  # a function's queue is named like it
    if run.status == "PENDING" and run.app_version == version:
        client.resume_workflow(run.workflow_id, queue_name=queue)
        return
    if run.status == "PENDING":
        client.update_workflow_attributes(run.workflow_id, {RECOVERING: executor}, merge=True)
        client.cancel_workflow(run.workflow_id)
    client.rewind_workflow(run.workflow_id, start_step=_first_unfinished_step(client, run),
                           application_version=version, queue_name=queue)


def _first_unfinished_step(client: DBOSClient, run: WorkflowStatus) -> int:
    """Where a rewind resumes: the step in flight when the worker died, or the one
    after the last recorded step (completed steps keep their results)."""
    steps: list[Any] = client.list_workflow_steps(run.workflow_id, load_output=False)
    unfinished = [s["function_id"] for s in steps if s["completed_at_epoch_ms"] is None]
    if unfinished:
        return min(unfinished)
    return max((s["function_id"] for s in steps), default=0) + 1


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
    """Renew the lease. A worker that was too slow to renew it was claimed as dead:
    it registers again at once, so it is not taken for dead again and again (its
    runs resumed elsewhere while it runs them) for as long as it lives."""
    async with database.unit_of_work() as session:
        result = await session.execute(
            update(JobWorker)
            .where(JobWorker.executor_id == executor_id, JobWorker.recovered_by.is_(None))
            .values(heartbeat_at=utcnow())
        )
    if rows_changed(result) == 0:
        log.error("worker %s lost its lease (another worker recovered its runs) and "
                  "registers again; raise TUTORAPP_JOBS_RECOVERY_LEASE_SECONDS", executor_id)
        await register(database, executor_id)


async def claim_expired(database: Database, executor_id: str, lease_seconds: float) -> list[str]:
    """Dead workers this one recovers: unclaimed, claimed by this one earlier (some
    runs were left), or claimed by a worker that died in turn."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    dead = or_(JobWorker.heartbeat_at < cutoff, JobWorker.stopped_at.is_not(None))
    async with database.unit_of_work() as session:
        dead_workers = select(JobWorker.executor_id).where(dead).scalar_subquery()
        candidates = (await session.execute(
            select(JobWorker.executor_id, JobWorker.recovered_by).where(
                JobWorker.executor_id != executor_id,
                JobWorker.recovered_at.is_(None),
                dead,
                or_(JobWorker.recovered_by.is_(None), JobWorker.recovered_by == executor_id,
                    JobWorker.recovered_by.in_(dead_workers)),
            )
        )).all()
        claimed = []
        for candidate, claimer in candidates:
            if claimer == executor_id:
                claimed.append(candidate)
                continue
            result = await session.execute(
                update(JobWorker)
                .where(JobWorker.executor_id == candidate, JobWorker.recovered_at.is_(None),
                       JobWorker.recovered_by.is_not_distinct_from(claimer))
                .values(recovered_by=executor_id)
            )
            if rows_changed(result) == 1:
                claimed.append(candidate)
    return claimed


async def mark_recovered(database: Database, dead: str, executor_id: str) -> None:
    async with database.unit_of_work() as session:
        await session.execute(
            update(JobWorker)
            .where(JobWorker.executor_id == dead, JobWorker.recovered_by == executor_id)
            .values(recovered_at=utcnow())
        )


async def mark_stopped(database: Database, executor_id: str) -> None:
    async with database.unit_of_work() as session:
        await session.execute(
            update(JobWorker).where(JobWorker.executor_id == executor_id)
            .values(stopped_at=utcnow())
        )
