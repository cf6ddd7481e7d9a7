"""A real TutorApp server (uvicorn in a thread) for the realtime clients, per dialect.

`rt` gives an HTTP client on the server, a Database on the test's loop, and `sign_in`
(tests/scheduling's: a user, an AuthSession and an access token)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.gotrue.conftest import (
    ANON_KEY,
    SERVICE_KEY,
    _empty,
    _free_port,
    node_modules,  # noqa: F401  (fixture: the supabase-js install)
)
from tests.waiting import deadline
from tutorapp.app import create_app
from tutorapp.core.db import Database

EVERY_DAY = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(7)]


@dataclass
class Server:
    url: str
    app: FastAPI

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/realtime/v1"


def serve(database_url: str, **overrides: Any) -> tuple[uvicorn.Server, threading.Thread, Server]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, **{
        "public_url": base, "allowed_hosts": ["127.0.0.1"], "supabase_anon_key": ANON_KEY,
        "supabase_service_key": SERVICE_KEY} | overrides)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + deadline(30)
    while not server.started:
        assert thread.is_alive() and time.monotonic() < end, "the server did not start"
        time.sleep(0.05)
    return server, thread, Server(url=base, app=app)


@pytest.fixture(scope="module")
def live_server(database_url: str) -> Iterator[Server]:
    """Fans out through Redis when TUTORAPP_TEST_REDIS_URL is set, else LISTEN/NOTIFY on
    PostgreSQL, else in-process."""
    fanout: dict[str, Any] = {}
    if url := redis_url():
        fanout = {"redis_url": url, "redis_key_prefix": f"test-{uuid.uuid4().hex[:8]}"}
    server, thread, live = serve(database_url, **fanout)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=deadline(30))
        cleaner = threading.Thread(target=asyncio.run, args=(_empty(database_url),))
        cleaner.start()
        cleaner.join()


@dataclass
class RT:
    server: Server
    db: Database
    http: httpx.AsyncClient
    app: SimpleNamespace  # what tests/scheduling's helpers need of an app


@pytest.fixture
async def rt(live_server: Server, database_url: str) -> AsyncIterator[RT]:
    settings = live_server.app.state.settings
    db = Database(make_settings(database_url))
    fake_app = SimpleNamespace(state=SimpleNamespace(database=db, settings=settings))
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        try:
            yield RT(server=live_server, db=db, http=http, app=fake_app)
        finally:
            await db.dispose()
            await _empty(database_url)


def redis_url() -> str | None:
    return os.environ.get("TUTORAPP_TEST_REDIS_URL")
