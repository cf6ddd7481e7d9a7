"""The PostgreSQL broker's LISTEN connection: an app starts while PostgreSQL is down
(tests/ops/test_health.py), and a listener whose connection is cut connects again."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.waiting import deadline, wait_until
from tutorapp.core.db import Database
from tutorapp.realtime.broker import LISTENER_NAME, PostgresBroker


async def _listener_pids(db: Database) -> list[int]:
    async with db.primary.connect() as conn:
        return list(await conn.scalars(text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :n "
            "AND datname = current_database()"), {"n": LISTENER_NAME}))


async def test_a_cut_listen_connection_reconnects_and_delivers_again(
        app: Any, db: Database, dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY needs PostgreSQL")
    received: list[dict[str, Any]] = []

    async def deliver(message: dict[str, Any]) -> None:
        received.append(message)

    broker = PostgresBroker(app.state.settings, db.primary)
    await broker.start(deliver)
    try:
        first = await wait_until(lambda: _listener_pids(db), timeout=deadline(20),
                                 what="the LISTEN connection")
        await broker.publish({"topic": "t", "n": 1})
        await wait_until(lambda: any(m.get("n") == 1 for m in received), timeout=deadline(20),
                         what="the first notification")

        async with db.primary.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first[0]})

        async def replaced() -> bool:
            pids = await _listener_pids(db)
            return bool(pids) and pids != first

        await wait_until(replaced, timeout=deadline(30), what="a new LISTEN connection")
        await broker.publish({"topic": "t", "n": 2})
        await wait_until(lambda: any(m.get("n") == 2 for m in received), timeout=deadline(20),
                         what="a notification after the reconnect")
    finally:
        await broker.stop()
    assert [m["n"] for m in received] == [1, 2]
