"""Stored bytes in the usage meter (`usage_counters`): the one place files touches it,
so the meter can move package without touching the rest of this domain."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.metering import service as usage

TOTAL = "storage.bytes"
PERIOD = "total"  # stored bytes are a level, not a flow: one row, no period


def bucket_metric(bucket_id: str) -> str:
    return f"{TOTAL}.{bucket_id}"


async def reserve(session: AsyncSession, bucket_id: str, size: int, cap: int) -> bool:
    """Count `size` more stored bytes unless the total would pass `cap` (0: no cap)."""
    if cap and not await usage.try_increment(session, TOTAL, PERIOD, cap, size):
        return False
    if not cap:
        await usage.increment(session, TOTAL, PERIOD, size)
    await usage.increment(session, bucket_metric(bucket_id), PERIOD, size)
    return True


async def release(session: AsyncSession, bucket_id: str, size: int) -> None:
    await usage.increment(session, TOTAL, PERIOD, -size)
    await usage.increment(session, bucket_metric(bucket_id), PERIOD, -size)


async def stored(session: AsyncSession, bucket_id: str | None = None) -> int:
    return await usage.get(session, bucket_metric(bucket_id) if bucket_id else TOTAL, PERIOD)
