"""`Idempotency-Key`: a retried request gets the first answer instead of a second booking.

The key row is inserted in the same transaction as the booking it answers, so the
two commit (or roll back) together. Two concurrent requests with one key: on
PostgreSQL the second waits on the first's uncommitted key row, then finds it; on
SQLite the write transactions are serialized anyway.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.core.errors import AppError, InvalidInput
from tutorapp.scheduling.models import IdempotencyKey


class KeyReused(AppError):
    status, type, title = 422, "/problems/idempotency-key-reused", "Idempotency key reused"


def request_hash(method: str, path: str, body: Any) -> str:
    payload = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


async def _stored(session: AsyncSession, user_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )


def _replay(row: IdempotencyKey, fingerprint: str) -> tuple[int, dict[str, Any]]:
    if row.request_hash != fingerprint:
        raise KeyReused("This Idempotency-Key was used for a different request.")
    return row.status_code or 200, row.response or {}


async def run_once(
    session: AsyncSession, *, user_id: uuid.UUID, key: str | None, fingerprint: str,
    action: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed). Without a key, just runs `action`."""
    if key is None:
        status, body = await action()
        return status, body, False
    if not 1 <= len(key) <= 200:
        raise InvalidInput("Idempotency-Key", "1 to 200 characters", location="header")
    if (row := await _stored(session, user_id, key)) is not None:
        return (*_replay(row, fingerprint), True)
    row = IdempotencyKey(user_id=user_id, key=key, request_hash=fingerprint)
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        existing = await _stored(session, user_id, key)
        if existing is None:  # pragma: no cover - the other request rolled back
            raise
        return (*_replay(existing, fingerprint), True)
    status, body = await action()
    row.status_code = status
    row.response = body
    await session.flush()
    return status, body, False
