"""Sign-ups and logins under real concurrency (issue 14, items 7 and 8).

Password hashing (argon2, tens of milliseconds of CPU by design) runs in a bounded
thread pool and before the sign-up's transaction: the event loop keeps serving other
requests meanwhile, and no request holds SQLite's write lock while it hashes.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import PASSWORD, make_user
from tests.waiting import deadline, wait_until
from tutorapp.app import create_app
from tutorapp.core import security
from tutorapp.core.db import Database


@pytest.fixture
async def roomy_app(database_url: str):  # no rate limit gets in the way
    application = create_app(make_settings(database_url, login_attempts_per_ip=10_000))
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            from tests.conftest import _empty_all_tables

            await _empty_all_tables(application)


@pytest.fixture
async def roomy(roomy_app: FastAPI):
    transport = httpx.ASGITransport(app=roomy_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def signup(n: int, email: str | None = None) -> dict:
    return {"email": email or f"racer{n}@example.com", "password": PASSWORD,
            "display_name": f"Racer {n}", "role": "student", "time_zone": "UTC"}


async def test_sixty_concurrent_sign_ups_never_hit_a_locked_database(roomy) -> None:
    """40 new addresses and 20 racing for one: 41 x 201 and 19 x 409, nothing else."""
    bodies = [signup(n) for n in range(40)] + [signup(100 + n, "same@example.com") for n in range(20)]
    responses = await asyncio.gather(*(roomy.post("/api/v1/auth/signup", json=b) for b in bodies))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 41, 409: 19}, {
        c: next(r.text for r in responses if r.status_code == c) for c in codes}


class BlockingHasher:
    """Stands in for argon2's CPU time: blocks its thread until released, and counts
    how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = self.most = self.done = 0

    def verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(timeout=deadline(10))
            return True, None
        finally:
            with self.lock:
                self.running -= 1
                self.done += 1


async def test_health_answers_while_logins_hash_and_hashing_is_bounded(
    roomy_app: FastAPI, roomy: httpx.AsyncClient, db_of_roomy: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    accounts = [await make_user(db_of_roomy, email=f"login{n}@example.com") for n in range(6)]
    hasher = BlockingHasher()
    monkeypatch.setattr(security._password_hash, "verify_and_update", hasher.verify_and_update)
    logins = [asyncio.create_task(roomy.post("/api/v1/auth/login", json={
        "email": a.email, "password": PASSWORD})) for a in accounts]
    threads = 2  # TUTORAPP_PASSWORD_HASH_THREADS' default
    await wait_until(lambda: hasher.running == threads, timeout=10,
                     what=f"{threads} hashes to start", interval=0.01)
    live = await roomy.get("/health/live")
    assert live.status_code == 200
    assert hasher.done == 0  # answered while every hash was still running
    assert hasher.running == threads  # the other logins queue for the pool
    hasher.release.set()
    responses = await asyncio.gather(*logins)
    assert [r.status_code for r in responses] == [200] * 6
    assert hasher.most == threads == roomy_app.state.settings.password_hash_threads


@pytest.fixture
def db_of_roomy(roomy_app: FastAPI) -> Database:
    return roomy_app.state.database
