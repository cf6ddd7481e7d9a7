"""Access and refresh tokens: expiry, forgery, key rotation, rotation and theft detection."""

import base64
import json
from datetime import timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import make_user, sign_in
from tutorapp.app import create_app
from tutorapp.core.db import Database
from tutorapp.core.security import issue_access_token
from tutorapp.core.time import utcnow


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


async def test_expired_access_token_is_refused(client: httpx.AsyncClient, db: Database,
                                                settings) -> None:
    account = await sign_in(client, await make_user(db))
    claims = claims_of(account.access_token)
    expired, _ = issue_access_token(
        settings, user_id=account.user.id, role="student", aal="aal1", amr=["pwd"],
        session_id=__import__("uuid").UUID(claims["session_id"]),
        now=utcnow() - timedelta(hours=1),
    )
    response = await me(client, expired)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_token_signed_with_another_key_is_refused(client: httpx.AsyncClient,
                                                        db: Database) -> None:
    account = await sign_in(client, await make_user(db))
    forged = jwt.encode(claims_of(account.access_token), "x" * 64, algorithm="HS256",
                        headers={"kid": "default"})
    assert (await me(client, forged)).status_code == 401


async def test_alg_none_token_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    account = await sign_in(client, await make_user(db))

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'default'})}." \
               f"{b64(claims_of(account.access_token))}."
    assert (await me(client, unsigned)).status_code == 401


async def test_tampered_claims_are_refused(client: httpx.AsyncClient, db: Database) -> None:
    account = await sign_in(client, await make_user(db))
    header, _, signature = account.access_token.split(".")
    claims = claims_of(account.access_token) | {"role": "admin"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert (await me(client, f"{header}.{body}.{signature}")).status_code == 401


async def test_garbage_bearer_is_refused(client: httpx.AsyncClient) -> None:
    assert (await me(client, "not-a-jwt")).status_code == 401


async def _client_for(app: FastAPI):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_signing_key_rotation(database_url: str) -> None:
    old, new = "old:" + "o" * 40, "new:" + "n" * 40
    before = create_app(make_settings(database_url, jwt_keys=[old]))
    during = create_app(make_settings(database_url, jwt_keys=[new, old]))
    after = create_app(make_settings(database_url, jwt_keys=[new]))
    async with before.router.lifespan_context(before), \
            during.router.lifespan_context(during), after.router.lifespan_context(after):
        account = await make_user(before.state.database)
        async with await _client_for(before) as c:
            await sign_in(c, account)
        assert jwt.get_unverified_header(account.access_token)["kid"] == "old"
        async with await _client_for(during) as c:
            assert (await me(c, account.access_token)).status_code == 200
            fresh = await c.post("/api/v1/auth/token/refresh",
                                 json={"refresh_token": account.refresh_token})
            assert jwt.get_unverified_header(fresh.json()["access_token"])["kid"] == "new"
        async with await _client_for(after) as c:
            response = await me(c, account.access_token)
            assert response.status_code == 401
            assert "unknown signing key" in response.json()["detail"]
            assert (await me(c, fresh.json()["access_token"])).status_code == 200
        from tests.conftest import _empty_all_tables

        await _empty_all_tables(before)


async def test_refresh_rotates_the_token(client: httpx.AsyncClient, db: Database) -> None:
    account = await sign_in(client, await make_user(db))
    first = await client.post("/api/v1/auth/token/refresh",
                              json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    body = first.json()
    assert body["refresh_token"] != account.refresh_token
    assert claims_of(body["access_token"])["session_id"] == \
        claims_of(account.access_token)["session_id"]
    second = await client.post("/api/v1/auth/token/refresh",
                               json={"refresh_token": body["refresh_token"]})
    assert second.status_code == 200


async def test_reuse_within_the_grace_period_is_tolerated(client: httpx.AsyncClient,
                                                          db: Database) -> None:
    """Two tabs refreshing at once must not sign the user out."""
    account = await sign_in(client, await make_user(db))
    payload = {"refresh_token": account.refresh_token}
    assert (await client.post("/api/v1/auth/token/refresh", json=payload)).status_code == 200
    assert (await client.post("/api/v1/auth/token/refresh", json=payload)).status_code == 200


async def test_reuse_after_rotation_revokes_the_whole_session(database_url: str) -> None:
    app = create_app(make_settings(database_url, refresh_reuse_grace_seconds=0))
    async with app.router.lifespan_context(app), await _client_for(app) as client:
        account = await sign_in(client, await make_user(app.state.database))
        stolen = account.refresh_token
        rotated = await client.post("/api/v1/auth/token/refresh", json={"refresh_token": stolen})
        assert rotated.status_code == 200
        reuse = await client.post("/api/v1/auth/token/refresh", json={"refresh_token": stolen})
        assert reuse.status_code == 401
        assert "already used" in reuse.json()["detail"]
        # Every token of that session is dead now, including the legitimate new ones.
        legit = rotated.json()
        assert (await client.post("/api/v1/auth/token/refresh",
                                  json={"refresh_token": legit["refresh_token"]})).status_code == 401
        assert (await me(client, legit["access_token"])).status_code == 401
        from tests.conftest import _empty_all_tables

        await _empty_all_tables(app)


async def test_unknown_refresh_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/token/refresh", json={"refresh_token": "nope"})
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/invalid-grant"


@pytest.mark.parametrize("scope", ["local", "others", "global"])
async def test_logout_scopes(client: httpx.AsyncClient, db: Database, scope: str) -> None:
    account = await make_user(db)
    phone = await sign_in(client, account)
    phone_token = phone.access_token
    laptop = await sign_in(client, account)
    response = await client.post("/api/v1/auth/logout", json={"scope": scope},
                                 headers=laptop.headers)
    assert response.status_code == 204
    laptop_alive = (await me(client, laptop.access_token)).status_code == 200
    phone_alive = (await me(client, phone_token)).status_code == 200
    assert (laptop_alive, phone_alive) == {
        "local": (False, True), "others": (True, False), "global": (False, False)}[scope]


async def test_sessions_list_and_revoke_one(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db)
    other_token = (await sign_in(client, account)).access_token
    current = await sign_in(client, account)
    listed = (await client.get("/api/v1/me/sessions", headers=current.headers)).json()
    assert len(listed) == 2
    assert sorted(s["current"] for s in listed) == [False, True]
    assert all(s["device"].startswith("python-httpx/") for s in listed)
    other = next(s for s in listed if not s["current"])
    assert (await client.delete(f"/api/v1/me/sessions/{other['id']}",
                                headers=current.headers)).status_code == 204
    assert (await me(client, other_token)).status_code == 401
    assert (await client.delete(f"/api/v1/me/sessions/{other['id']}",
                                headers=current.headers)).status_code == 404
