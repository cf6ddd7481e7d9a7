"""Login lockout per account and per IP, in-process and shared through Redis."""

import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import REDIS_URL, _empty_all_tables, make_settings
from tests.factories import PASSWORD, emails_to, make_user
from tutorapp.app import create_app
from tutorapp.core.db import Database


async def attempt(client: httpx.AsyncClient, email: str, password: str = "wrong password!",
                  ip_headers: dict | None = None) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password},
                             headers=ip_headers or {})


async def test_account_locks_after_five_failures_and_owner_is_told(
    client: httpx.AsyncClient, db: Database
) -> None:
    account = await make_user(db, email="nia@example.com")
    statuses = [(await attempt(client, "nia@example.com")).status_code for _ in range(5)]
    assert statuses == [400, 400, 400, 400, 429]
    locked = await attempt(client, "nia@example.com", PASSWORD)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 15 * 60
    assert locked.json()["type"] == "/problems/rate-limited"
    notices = [m for m in await emails_to(db, "nia@example.com") if m.template == "auth/lockout"]
    assert len(notices) == 1
    assert notices[0].subject == "Sign-in to your TutorApp account was locked"
    _ = account


async def test_lockout_of_one_account_leaves_others_alone(client: httpx.AsyncClient,
                                                          db: Database) -> None:
    await make_user(db, email="oz@example.com")
    other = await make_user(db, email="pia@example.com")
    for _ in range(5):
        await attempt(client, "oz@example.com")
    assert (await attempt(client, other.email, PASSWORD)).status_code == 200


async def test_ip_limit(database_url: str) -> None:
    app = create_app(make_settings(database_url, login_attempts_per_ip=3))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.9", 1))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as client:
        statuses = [(await attempt(client, f"x{n}@example.com")).status_code for n in range(4)]
        assert statuses == [400, 400, 400, 429]
        await _empty_all_tables(app)


@pytest.mark.skipif(not REDIS_URL, reason="TUTORAPP_TEST_REDIS_URL not set")
async def test_processes_share_the_limit_through_redis(database_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"

    def app() -> FastAPI:
        return create_app(make_settings(database_url, redis_url=REDIS_URL, redis_key_prefix=prefix))

    first, second = app(), app()
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        await make_user(first.state.database, email="quinn@example.com")

        def client(a: FastAPI) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=a, raise_app_exceptions=False),
                                     base_url="http://testserver")

        async with client(first) as one, client(second) as two:
            assert [(await attempt(one, "quinn@example.com")).status_code for _ in range(3)] == [400] * 3
            assert (await attempt(two, "quinn@example.com")).status_code == 400
            assert (await attempt(two, "quinn@example.com")).status_code == 429
            assert (await attempt(one, "quinn@example.com", PASSWORD)).status_code == 429
        assert first.state.rate_limiter.storage.__class__.__name__ == "RedisStorage"
        await _empty_all_tables(first)
