"""Operations on runs (DBOS workflows): list, show, retry, cancel. Works from any
process (CLI, web, worker) through a DBOS client on the system database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dbos import WorkflowStatus

from tutorapp.core.errors import Conflict, NotFound
from tutorapp.jobs.registry import describe_error
from tutorapp.jobs.runtime import runtime

TERMINAL = {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}
FAILED = {"ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


class RunNotFound(NotFound):
    type = "/problems/job-run-not-found"


class RunNotRetryable(Conflict):
    type = "/problems/job-run-not-retryable"


@dataclass
class Run:
    id: str
    function: str
    status: str
    attempts: int  # times the run was started (1 + recoveries)
    created_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    executor_id: str | None
    version: str | None  # the release of the worker that runs (or ran) it
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "function": self.function, "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "duration_seconds": self.duration_seconds, "executor_id": self.executor_id,
            "version": self.version, "last_error": self.last_error,
        }


def _time(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _iso(epoch_ms: int | None) -> str | None:
    moment = _time(epoch_ms)
    return moment.isoformat() if moment else None


def _run(status: WorkflowStatus) -> Run:
    created = _time(status.created_at)
    completed = _time(status.completed_at) if status.status in TERMINAL else None
    if completed is None and status.status in TERMINAL:
        completed = _time(status.updated_at)
    started = _time(status.dequeued_at) or created
    duration = (completed - started).total_seconds() if completed and started else None
    error = None
    if status.error is not None:
        error = describe_error(status.error)
    return Run(
        id=status.workflow_id, function=status.name, status=status.status,
        attempts=max(1, status.recovery_attempts or 0), created_at=created, completed_at=completed,
        duration_seconds=round(duration, 3) if duration is not None else None,
        executor_id=status.executor_id, version=status.app_version, last_error=error,
    )


async def list_runs(
    *, limit: int = 50, status: str | None = None, function: str | None = None
) -> list[Run]:
    client = await asyncio.to_thread(runtime.client)
    statuses = await client.list_workflows_async(
        limit=limit, sort_desc=True, status=status.upper() if status else None, name=function,
        load_input=False, load_output=True,
    )
    return [_run(s) for s in statuses]


async def get_run(run_id: str) -> tuple[Run, list[dict[str, Any]]]:
    client = await asyncio.to_thread(runtime.client)
    found = await client.list_workflows_async(workflow_ids=[run_id], load_input=False)
    if not found:
        raise RunNotFound(f"No job run {run_id!r}.")
    steps = await client.list_workflow_steps_async(run_id)
    return _run(found[0]), [
        {
            "step": s["function_id"], "name": s["function_name"],
            "error": None if s["error"] is None else describe_error(s["error"]),
            "started_at": _iso(s["started_at_epoch_ms"]),
            "completed_at": _iso(s["completed_at_epoch_ms"]),
        }
        for s in steps
    ]


async def retry_run(run_id: str) -> Run:
    """Run a failed run again from its first failed step (earlier steps keep their
    recorded results), on its function's queue, under the same id."""
    run, steps = await get_run(run_id)
    if run.status not in FAILED | {"CANCELLED"}:
        raise RunNotRetryable(f"Run {run_id} is {run.status}; only failed or cancelled runs "
                              "can be retried.")
    failed = [s["step"] for s in steps if s["error"] is not None]
    start = failed[0] if failed else (steps[-1]["step"] + 1 if steps else 1)
    client = await asyncio.to_thread(runtime.client)
    await client.rewind_workflow_async(run_id, start_step=start, queue_name=run.function)
    return (await get_run(run_id))[0]


async def cancel_run(run_id: str) -> Run:
    run, _ = await get_run(run_id)
    if run.status in TERMINAL:
        raise RunNotRetryable(f"Run {run_id} already ended ({run.status}).")
    client = await asyncio.to_thread(runtime.client)
    await client.cancel_workflow_async(run_id)
    return (await get_run(run_id))[0]
