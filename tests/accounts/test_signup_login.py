import httpx
import jwt
import pytest

from tests.factories import PASSWORD, emails_to, last_email, make_user, sign_in
from tutorapp.core.db import Database

SIGNUP = {"email": "Ada@Example.com", "password": PASSWORD, "display_name": "Ada",
          "role": "student", "time_zone": "Europe/London"}


async def test_signup_creates_account_signs_in_and_sends_verification(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post("/api/v1/auth/signup", json=SIGNUP)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["email_verified"] is False
    assert body["user"]["time_zone"] == "Europe/London"
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["display_name"] == "Ada"
    message = await last_email(db, "ada@example.com", "auth/verify_email")
    assert message.subject == "Confirm your email address"
    assert "http://127.0.0.1:8000/auth/verify?token=" in message.text


async def test_signup_twice_with_one_address_is_a_conflict(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/auth/signup", json=SIGNUP)).status_code == 201
    again = await client.post("/api/v1/auth/signup", json=SIGNUP | {"email": "ADA@example.com"})
    assert again.status_code == 409
    assert again.json()["field"] == "email"


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short1234", "at least 10"), ("x" * 129, "at most 128"),
     ("1234567890", "most common"), ("password123", "most common")],
)
async def test_password_policy(client: httpx.AsyncClient, password: str, reason: str) -> None:
    response = await client.post("/api/v1/auth/signup", json=SIGNUP | {"password": password})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "password"
    assert reason in error["message"]


async def test_long_passphrases_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/signup", json=SIGNUP | {"password": "p" * 128})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [({"time_zone": "Mars/Olympus"}, "time_zone"), ({"role": "admin"}, "role"),
     ({"email": "not-an-email"}, "email"), ({"locale": "english!"}, "locale")],
)
async def test_signup_rejects_bad_fields(client: httpx.AsyncClient, change: dict, field: str) -> None:
    response = await client.post("/api/v1/auth/signup", json=SIGNUP | change)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_login_answers_like_oauth2(client: httpx.AsyncClient, db: Database,
                                          settings) -> None:
    account = await make_user(db, email="bob@example.com")
    response = await client.post("/api/v1/auth/login",
                                 json={"email": "BOB@example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert {"access_token", "token_type", "expires_in", "expires_at", "refresh_token"} <= body.keys()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(account.user.id)
    # Supabase's claims: the database role, our role in app_metadata (issue 18)
    assert claims["role"] == "authenticated"
    assert claims["app_metadata"]["role"] == "student"
    assert claims["aal"] == "aal1"
    assert [m["method"] for m in claims["amr"]] == ["password"]
    assert claims["aud"] == "authenticated"
    assert claims["iss"] == "http://127.0.0.1:8000/auth/v1"
    assert claims["exp"] - claims["iat"] == 900
    assert {"session_id", "jti"} <= claims.keys()
    assert jwt.get_unverified_header(body["access_token"])["kid"] == "default"


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_user(db, email="carol@example.com")
    wrong = await client.post("/api/v1/auth/login",
                              json={"email": "carol@example.com", "password": "nope" * 3})
    unknown = await client.post("/api/v1/auth/login",
                                json={"email": "nobody@example.com", "password": "nope" * 3})
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json()["detail"] == unknown.json()["detail"] == "Wrong email or password."


async def test_first_login_sends_no_new_device_notice_but_a_new_device_does(
    client: httpx.AsyncClient, db: Database
) -> None:
    account = await make_user(db, email="dan@example.com")
    await sign_in(client, account)
    assert [m.template for m in await emails_to(db, "dan@example.com")] == []
    await client.post("/api/v1/auth/login", json={"email": account.email, "password": PASSWORD},
                      headers={"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                               "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"})
    notice = await last_email(db, "dan@example.com", "auth/new_device")
    assert "Mobile Safari on iOS" in notice.text
    # The same device again: no second notice.
    await sign_in(client, account)
    assert len([m for m in await emails_to(db, "dan@example.com")
                if m.template == "auth/new_device"]) == 1
