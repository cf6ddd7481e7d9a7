"""Domain events of scheduling (`booking.confirmed`, `booking.cancelled`, ...).

`emit` records the event in the caller's transaction with the jobs engine
(`tutorapp.jobs.queue.emit`: functions subscribed to the event start after commit,
once per (name, key)), and runs the in-process handlers registered with `on_event`
(the realtime publisher, `scheduling/live.py`) after commit. Nothing runs on rollback.
The key is `<booking id>:<sequence>`, so a retried transition is one event. Handlers
receive (event name, booking id, data) and must reload fresh data and be safe to run twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.core.db import after_commit

Handler = Callable[[str, uuid.UUID, dict[str, Any]], Awaitable[None]]
_handlers: list[Handler] = []


def on_event(handler: Handler) -> Handler:
    """Register a handler for every scheduling event (usable as a decorator)."""
    _handlers.append(handler)
    return handler


async def emit(session: AsyncSession, name: str, booking_id: uuid.UUID, *, sequence: int,
               **data: Any) -> None:
    from tutorapp.jobs import queue

    await queue.emit(session, name, {"booking_id": str(booking_id), **data},
                     event_id=f"{booking_id}:{sequence}")
    for handler in list(_handlers):
        async def deliver(handler: Handler = handler) -> None:
            await handler(name, booking_id, data)

        after_commit(session, deliver)
