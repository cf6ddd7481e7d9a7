"""Background functions of the webhook inbox.

- `webhooks.process`: one attempt at one stored event (started after the inbox
  commit, and after a failed attempt at its backoff time).
- `webhooks.sweep` (every minute): due attempts whose start was lost.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from tutorapp.jobs.queue import enqueue
from tutorapp.jobs.registry import function, step
from tutorapp.jobs.runtime import runtime
from tutorapp.webhooks import service


async def _process(event_id: str) -> str:
    async with runtime.database().unit_of_work() as session:
        return await service.process(session, runtime.settings, uuid.UUID(event_id))


@function(service.PROCESS, concurrency=5)
async def process(event_id: str) -> str:
    """Apply one inbox event (safe to run twice: only a pending event is attempted)."""
    return await step("webhooks.apply", _process, event_id)


async def _start_due() -> int:
    async with runtime.database().session() as session:
        due = await service.due(session)
    for event_id, key in due:
        await enqueue(service.PROCESS, str(event_id), key=key)
    return len(due)


@function("webhooks.sweep", cron="* * * * *", concurrency=1)
async def sweep(scheduled_at: datetime) -> int:
    """Every minute: start the due attempts (keyed per attempt, so never twice)."""
    return await step("webhooks.start_due", _start_due)
