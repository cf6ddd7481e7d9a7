"""Two real `tutorapp serve` processes deliver to each other's clients: through Redis
pub/sub, and through PostgreSQL LISTEN/NOTIFY when there is no Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from realtime import AsyncRealtimeClient
from tests.conftest import TEST_SECRET, make_settings
from tests.gotrue.conftest import ANON_KEY, _empty
from tests.realtime.conftest import EVERY_DAY, redis_url
from tests.realtime.test_supabase_py import token
from tests.scheduling.conftest import approved_tutor, make_market, sign_in
from tests.waiting import deadline, wait_until
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database

PORTS = (8651, 8652)  # this suite's ports


@pytest.fixture(params=["redis", "postgresql"])
def broker(request: pytest.FixtureRequest, database_url: str) -> dict[str, str]:
    if request.param == "redis":
        if not redis_url():
            pytest.skip("TUTORAPP_TEST_REDIS_URL is not set")
        return {"TUTORAPP_REDIS_URL": str(redis_url()),
                "TUTORAPP_REDIS_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY needs PostgreSQL")
    return {}


@pytest.fixture
def processes(database_url: str, broker: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    tutorapp = shutil.which("tutorapp", path=str(Path(sys.executable).parent)) or "tutorapp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORAPP_")} | {
        "TUTORAPP_PROFILE": "test", "TUTORAPP_DATABASE_URL": database_url,
        "TUTORAPP_SECRET_KEY": TEST_SECRET, "TUTORAPP_ALLOWED_HOSTS": "127.0.0.1",
        "TUTORAPP_SUPABASE_ANON_KEY": ANON_KEY, "TUTORAPP_JOBS_EMBEDDED_WORKER": "false",
        "TUTORAPP_PUBLIC_URL": f"http://127.0.0.1:{PORTS[0]}",
    } | broker
    started = []
    for port in PORTS:
        log = (tmp_path / f"serve-{port}.log").open("w")
        started.append(subprocess.Popen(
            [tutorapp, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
            stdout=log, stderr=subprocess.STDOUT))
    try:
        yield [f"http://127.0.0.1:{port}" for port in PORTS]
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=deadline(20))
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(make_settings(database_url))
    try:
        yield database
    finally:
        await database.dispose()
        await _empty(database_url)


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"{url}/health/live")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_two_processes_deliver_to_each_others_clients(
        processes: list[str], db: Database, database_url: str) -> None:
    for url in processes:
        await wait_until(lambda url=url: ready(url), timeout=60, what=f"{url} to serve")
    settings = make_settings(database_url, public_url=processes[0])  # the tokens' issuer
    app = SimpleNamespace(state=SimpleNamespace(database=db, settings=settings))
    async with httpx.AsyncClient(base_url=processes[0]) as http:
        market = await make_market(app, http)
        tutor, tutor_id = await approved_tutor(app, http, market, rules=EVERY_DAY)
        student = await sign_in(app, role=Role.student)
        day = (datetime.now(ZoneInfo("Europe/London")) + timedelta(days=7)).date()
        start = datetime(day.year, day.month, day.day, 10, tzinfo=ZoneInfo("Europe/London"))
        response = await http.post("/api/v1/bookings", headers=student.headers, json={
            "tutor_id": tutor_id, "start": start.isoformat(), "length": 30})
        assert response.status_code == 201, response.text
        booking_id = response.json()["id"]

        sockets = []
        heard: list[Any] = []
        changes: list[Any] = []
        try:
            for url, caller in zip(processes, (student, tutor), strict=True):
                socket = AsyncRealtimeClient(url.replace("http", "ws") + "/realtime/v1",
                                             token=ANON_KEY, auto_reconnect=False)
                await socket.connect()
                await socket.set_auth(token(caller))
                sockets.append(socket)
            here = sockets[0].channel(f"booking:{booking_id}", {"config": {
                "broadcast": {"ack": True}, "presence": {"key": "student"}}})
            await here.subscribe()
            await here.track({"online": True})  # before the other process's client joins
            there = sockets[1].channel(f"booking:{booking_id}")
            there.on_broadcast("hello", lambda p: heard.append(p))
            there.on_postgres_changes("*", lambda p: changes.append(p), table="bookings")
            there.on_presence_sync(lambda: None)
            await there.subscribe()
            await wait_until(lambda: "student" in there.presence.state, timeout=15,
                             what="the presence tracked on process 1, at process 2")
            assert [m["online"] for m in there.presence.state["student"]] == [True]

            await here.send_broadcast("hello", {"from": "process 1"})
            await wait_until(lambda: heard, timeout=15, what="the broadcast on process 2")
            assert heard[0]["payload"] == {"from": "process 1"}

            response = await http.post(f"/api/v1/bookings/{booking_id}/cancel",
                                       headers=student.headers, json={"reason": "ill"})
            assert response.status_code == 200, response.text
            await wait_until(lambda: changes, timeout=15, what="the booking event on process 2")
            data = changes[0]["data"]
            assert data["record"]["status"] == "cancelled" and data["type"] == "UPDATE"
        finally:
            for socket in sockets:
                await socket.close()
