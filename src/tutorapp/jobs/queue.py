"""Starting functions: `enqueue` now or later, `enqueue_after_commit`, and domain
events (`emit`), stored with the transaction that caused them and dispatched to
their functions after commit."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from dbos import DBOS, EnqueueOptions
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.core.db import after_commit, insert_for, rows_changed
from tutorapp.core.time import utcnow
from tutorapp.jobs.registry import subscribers, workflow_id
from tutorapp.jobs.runtime import runtime

log = logging.getLogger("tutorapp.jobs")


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
    client = runtime._client
    if client is None:
        client = await asyncio.to_thread(runtime.client)
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
    if rows_changed(result) == 0:
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
