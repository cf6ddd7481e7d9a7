"""Domain events of scheduling (`booking.confirmed`, `booking.cancelled`, ...).

`emit` records the event in the caller's transaction with the jobs engine
(`tutorapp.jobs.queue.emit`: functions subscribed to the event start after commit,
once per (name, key)). Nothing runs on rollback. The key is `<booking id>:<sequence>`,
so a retried transition is one event. Functions receive the event with the booking
id and must reload fresh data and be safe to run twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def emit(session: AsyncSession, name: str, booking_id: uuid.UUID, *, sequence: int,
               **data: Any) -> None:
    from tutorapp.jobs import queue

    await queue.emit(session, name, {"booking_id": str(booking_id), **data},
                     event_id=f"{booking_id}:{sequence}")
