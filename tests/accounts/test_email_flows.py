"""Verification, password reset, passwordless login and change of email, end to end."""

from datetime import timedelta

import httpx
from sqlalchemy import update

from tests.factories import PASSWORD, emails_to, last_email, link_token, make_user, sign_in
from tutorapp.accounts.models import OneTimeToken
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow

NEW_PASSWORD = "a brand new passphrase"


async def test_verification_link_confirms_once_and_welcomes(client: httpx.AsyncClient,
                                                            db: Database) -> None:
    signup = await client.post("/api/v1/auth/signup", json={
        "email": "eve@example.com", "password": PASSWORD, "display_name": "Eve"})
    token = link_token(await last_email(db, "eve@example.com", "auth/verify_email"))
    verified = await client.post("/api/v1/auth/verify", json={"token": token})
    assert verified.status_code == 200
    assert verified.json()["email_verified"] is True
    assert (await last_email(db, "eve@example.com", "auth/welcome")).subject == "Welcome to TutorApp"
    again = await client.post("/api/v1/auth/verify", json={"token": token})
    assert again.status_code == 400
    assert again.json()["type"] == "/problems/invalid-token"
    me = await client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {signup.json()['access_token']}"})
    assert me.json()["email_verified"] is True


async def test_expired_verification_link_is_refused(client: httpx.AsyncClient,
                                                    db: Database) -> None:
    await client.post("/api/v1/auth/signup", json={
        "email": "fay@example.com", "password": PASSWORD, "display_name": "Fay"})
    token = link_token(await last_email(db, "fay@example.com", "auth/verify_email"))
    async with db.unit_of_work() as session:
        await session.execute(update(OneTimeToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await client.post("/api/v1/auth/verify", json={"token": token})).status_code == 400


async def test_password_reset_gives_the_same_answer_and_works_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    account = await make_user(db, email="gus@example.com")
    session = await sign_in(client, account)
    known = await client.post("/api/v1/auth/password/recover", json={"email": "gus@example.com"})
    unknown = await client.post("/api/v1/auth/password/recover", json={"email": "who@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert await emails_to(db, "who@example.com") == []
    message = await last_email(db, "gus@example.com", "auth/reset_password")
    assert "60 minutes" in message.text
    token = link_token(message)

    weak = await client.post("/api/v1/auth/password/reset", json={"token": token, "password": "short"})
    assert weak.status_code == 422
    done = await client.post("/api/v1/auth/password/reset",
                             json={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 200
    assert (await client.post("/api/v1/auth/password/reset",
                              json={"token": token, "password": NEW_PASSWORD})).status_code == 400
    # Every session ended; the new password works, the old one does not.
    assert (await client.get("/api/v1/me", headers=session.headers)).status_code == 401
    assert (await client.post("/api/v1/auth/login", json={
        "email": "gus@example.com", "password": PASSWORD})).status_code == 400
    assert (await client.post("/api/v1/auth/login", json={
        "email": "gus@example.com", "password": NEW_PASSWORD})).status_code == 200
    await last_email(db, "gus@example.com", "auth/password_changed")


async def test_password_reset_never_bypasses_mfa(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db, email="hal@example.com", totp=True)
    await client.post("/api/v1/auth/password/recover", json={"email": "hal@example.com"})
    token = link_token(await last_email(db, "hal@example.com", "auth/reset_password"))
    reset = await client.post("/api/v1/auth/password/reset",
                              json={"token": token, "password": NEW_PASSWORD})
    assert "access_token" not in reset.json()
    login = await client.post("/api/v1/auth/login",
                              json={"email": "hal@example.com", "password": NEW_PASSWORD})
    assert login.json()["next_step"] == "mfa"
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    blocked = await client.patch("/api/v1/me", json={"display_name": "x"}, headers=headers)
    assert blocked.status_code == 403
    assert blocked.json()["type"] == "/problems/mfa-required"
    _ = account


async def test_login_by_emailed_code(client: httpx.AsyncClient, db: Database) -> None:
    await make_user(db, email="ivy@example.com")
    sent = await client.post("/api/v1/auth/otp", json={"email": "ivy@example.com"})
    assert sent.status_code == 202
    message = await last_email(db, "ivy@example.com", "auth/login_code")
    code = message.subject.rsplit(" ", 1)[-1]
    assert code.isdigit() and len(code) == 6
    wrong = "000000" if code != "000000" else "111111"
    assert (await client.post("/api/v1/auth/otp/verify",
                              json={"email": "ivy@example.com", "code": wrong})).status_code == 400
    ok = await client.post("/api/v1/auth/otp/verify", json={"email": "ivy@example.com", "code": code})
    assert ok.status_code == 200
    import jwt

    claims = jwt.decode(ok.json()["access_token"], options={"verify_signature": False})
    assert [m["method"] for m in claims["amr"]] == ["otp"]
    assert (await client.post("/api/v1/auth/otp/verify",
                              json={"email": "ivy@example.com", "code": code})).status_code == 400


async def test_login_by_magic_link_works_once(client: httpx.AsyncClient, db: Database) -> None:
    await make_user(db, email="jay@example.com")
    await client.post("/api/v1/auth/otp", json={"email": "jay@example.com"})
    message = await last_email(db, "jay@example.com", "auth/login_code")
    assert "/auth/magic?token=" in message.text
    token = link_token(message)
    assert (await client.post("/api/v1/auth/otp/verify", json={"token": token})).status_code == 200
    assert (await client.post("/api/v1/auth/otp/verify", json={"token": token})).status_code == 400


async def test_one_code_request_per_minute_per_address(client: httpx.AsyncClient,
                                                        db: Database) -> None:
    await make_user(db, email="kim@example.com")
    assert (await client.post("/api/v1/auth/otp", json={"email": "kim@example.com"})).status_code == 202
    again = await client.post("/api/v1/auth/otp", json={"email": "kim@example.com"})
    assert again.status_code == 429
    assert 1 <= int(again.headers["retry-after"]) <= 60
    assert len(await emails_to(db, "kim@example.com")) == 1
    # Unknown addresses are limited the same way, so the limit reveals nothing.
    assert (await client.post("/api/v1/auth/otp", json={"email": "zed@example.com"})).status_code == 202
    assert (await client.post("/api/v1/auth/otp", json={"email": "zed@example.com"})).status_code == 429


async def test_change_of_email_is_confirmed_on_the_new_address(client: httpx.AsyncClient,
                                                               db: Database) -> None:
    account = await sign_in(client, await make_user(db, email="lea@example.com"))
    wrong = await client.post("/api/v1/me/email", headers=account.headers, json={
        "new_email": "lea.new@example.com", "current_password": "not my password"})
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "current_password"
    asked = await client.post("/api/v1/me/email", headers=account.headers, json={
        "new_email": "lea.new@example.com", "current_password": PASSWORD})
    assert asked.status_code == 202
    me = (await client.get("/api/v1/me", headers=account.headers)).json()
    assert me["email"] == "lea@example.com"  # unchanged until confirmed
    token = link_token(await last_email(db, "lea.new@example.com", "auth/confirm_email_change"))
    confirmed = await client.post("/api/v1/auth/verify", json={"token": token})
    assert confirmed.json()["email"] == "lea.new@example.com"
    assert (await last_email(db, "lea@example.com", "auth/email_changed")).text.count(
        "lea.new@example.com") == 1


async def test_change_of_password_rotates_the_session(client: httpx.AsyncClient,
                                                      db: Database) -> None:
    account = await make_user(db)
    elsewhere = (await sign_in(client, account)).access_token
    here = await sign_in(client, account)
    response = await client.post("/api/v1/me/password", headers=here.headers, json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "sign_out_others": True})
    assert response.status_code == 200
    fresh = response.json()["access_token"]
    import jwt

    assert jwt.decode(fresh, options={"verify_signature": False})["session_id"] != \
        jwt.decode(here.access_token, options={"verify_signature": False})["session_id"]
    assert (await client.get("/api/v1/me", headers=here.headers)).status_code == 401
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {elsewhere}"})).status_code == 401
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
