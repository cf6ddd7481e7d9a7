"""/auth/v1 on the wire: GoTrue's routes, fields, error codes and rules, in process."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import update

from tests.conftest import _empty_all_tables, make_settings
from tests.factories import PASSWORD, last_email, link_token, make_user
from tests.gotrue.conftest import ANON_KEY, SERVICE_KEY
from tutorapp.accounts import sessions
from tutorapp.accounts.models import AuthSession
from tutorapp.app import create_app
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database

V2024 = {"X-Supabase-Api-Version": "2024-01-01"}
Client = Callable[..., Awaitable[tuple[httpx.AsyncClient, Database]]]


@pytest.fixture
async def client_with(database_url: str) -> AsyncIterator[Client]:
    """A client of an app built with these settings."""
    async with AsyncExitStack() as stack:
        apps = []

        async def make(**overrides: object) -> tuple[httpx.AsyncClient, Database]:
            app = create_app(make_settings(database_url, **overrides))
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps.append(app)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            return await stack.enter_async_context(client), app.state.database

        yield make
        if apps:
            await _empty_all_tables(apps[0])


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def password_grant(client: httpx.AsyncClient, email: str, password: str = PASSWORD,
                         headers: dict | None = None) -> httpx.Response:
    return await client.post("/auth/v1/token", params={"grant_type": "password"},
                             json={"email": email, "password": password}, headers=headers)


async def test_wrong_password_in_both_error_shapes(client: httpx.AsyncClient, db) -> None:
    account = await make_user(db)
    legacy = await password_grant(client, account.email, "wrong password here")
    assert legacy.status_code == 400
    assert legacy.json() == {"code": 400, "error_code": "invalid_credentials",
                             "msg": "Invalid login credentials"}
    assert legacy.headers["x-sb-error-code"] == "invalid_credentials"
    assert "x-supabase-api-version" not in legacy.headers
    current = await password_grant(client, account.email, "wrong password here", headers=V2024)
    assert current.json() == {"code": "invalid_credentials",
                              "message": "Invalid login credentials"}
    assert current.headers["x-supabase-api-version"] == "2024-01-01"
    # /api/v1 keeps problem+json
    ours = await client.post("/api/v1/auth/login",
                             json={"email": account.email, "password": "wrong password here"})
    assert ours.headers["content-type"] == "application/problem+json"


async def test_session_and_user_objects(client: httpx.AsyncClient, db) -> None:
    account = await make_user(db, role=Role.tutor)
    response = await password_grant(client, account.email)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "expires_at",
                         "refresh_token", "user"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 900)
    assert body["expires_at"] == claims(body["access_token"])["exp"]
    user = body["user"]
    assert (user["id"], user["aud"], user["role"], user["email"]) == (
        str(account.user.id), "authenticated", "authenticated", account.email)
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"], "role": "tutor"}
    assert user["user_metadata"] == {"display_name": account.user.display_name,
                                     "time_zone": "UTC", "locale": "en"}
    assert [i["provider"] for i in user["identities"]] == ["email"]
    assert user["email_confirmed_at"] == user["confirmed_at"] is not None
    assert "factors" not in user
    token = claims(body["access_token"])
    assert {k: token[k] for k in ("role", "aal", "email", "phone", "is_anonymous", "aud",
                                  "iss")} == {
        "role": "authenticated", "aal": "aal1", "email": account.email, "phone": "",
        "is_anonymous": False, "aud": "authenticated", "iss": "http://127.0.0.1:8000/auth/v1"}
    assert token["app_metadata"]["role"] == "tutor"
    me = await client.get("/auth/v1/user",
                          headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == user


async def test_refresh_keeps_the_sign_in_time_and_detects_reuse(client_with: Client) -> None:
    client, app_db = await client_with(refresh_reuse_grace_seconds=0)
    account = await make_user(app_db)
    first = (await password_grant(client, account.email)).json()
    session_id = uuid.UUID(claims(first["access_token"])["session_id"])
    async with app_db.unit_of_work() as session:  # signed in long ago
        await session.execute(update(AuthSession).where(AuthSession.id == session_id)
                              .values(amr="password:1700000000"))
    grant = {"grant_type": "refresh_token"}
    second = await client.post("/auth/v1/token", params=grant,
                               json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    refreshed = claims(second.json()["access_token"])
    assert refreshed["amr"] == [{"method": "password", "timestamp": 1700000000}]
    assert refreshed["iat"] > 1700000000
    reused = await client.post("/auth/v1/token", params=grant,
                               json={"refresh_token": first["refresh_token"]}, headers=V2024)
    assert (reused.status_code, reused.json()["code"]) == (400, "refresh_token_already_used")
    ended = await client.post("/auth/v1/token", params=grant,
                              json={"refresh_token": second.json()["refresh_token"]},
                              headers=V2024)
    assert (ended.status_code, ended.json()["code"]) == (400, "session_expired")
    unknown = await client.post("/auth/v1/token", params=grant, json={"refresh_token": "x"},
                                headers=V2024)
    assert unknown.json()["code"] == "refresh_token_not_found"


async def test_api_key_is_required_when_configured(client_with: Client) -> None:
    client, _ = await client_with(supabase_anon_key=ANON_KEY, supabase_service_key=SERVICE_KEY)
    missing = await client.get("/auth/v1/settings", headers=V2024)
    assert (missing.status_code, missing.json()["code"]) == (401, "no_api_key")
    wrong = await client.get("/auth/v1/settings", headers=V2024 | {"apikey": "nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_api_key")
    for key in (ANON_KEY, SERVICE_KEY):
        assert (await client.get("/auth/v1/settings", headers={"apikey": key})).status_code == 200
    assert (await client.get("/auth/v1/settings", params={"apikey": ANON_KEY})).status_code == 200
    assert (await client.get("/auth/v1/health")).status_code == 200  # open, as GoTrue's
    # Signed out, supabase-js sends the key as the bearer: that is an anonymous caller.
    as_bearer = {"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"}
    signup = await client.post("/auth/v1/signup", headers=as_bearer,
                               json={"email": "key@example.com", "password": PASSWORD})
    assert signup.status_code == 200
    assert signup.json()["user"]["email"] == "key@example.com"  # no confirmation: a session
    assert claims(signup.json()["access_token"])["amr"][0]["method"] == "password"
    assert (await client.get("/api/v1/tutors", headers=as_bearer)).status_code == 200
    assert (await client.get("/api/v1/me", headers=as_bearer)).status_code == 401


@pytest.mark.parametrize(("algorithm", "kty"), [("ES256", "EC"), ("RS256", "RSA")])
async def test_asymmetric_signing_and_jwks(client_with: Client, algorithm: str,
                                           kty: str) -> None:
    key = (ec.generate_private_key(ec.SECP256R1()) if kty == "EC"
           else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    client, app_db = await client_with(jwt_private_key=pem, jwt_private_key_id="key-2026")
    account = await make_user(app_db)
    body = (await password_grant(client, account.email)).json()
    assert jwt.get_unverified_header(body["access_token"]) == {
        "alg": algorithm, "kid": "key-2026", "typ": "JWT"}
    keys = (await client.get("/auth/v1/.well-known/jwks.json")).json()["keys"]
    assert [(k["kid"], k["alg"], k["kty"], k["use"]) for k in keys] == [
        ("key-2026", algorithm, kty, "sig")]
    assert "d" not in keys[0]  # the public half only
    verified = jwt.decode(body["access_token"], jwt.PyJWK(keys[0]).key, algorithms=[algorithm],
                          audience="authenticated")
    assert verified["sub"] == str(account.user.id)
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_jwks_is_empty_with_shared_secrets(client: httpx.AsyncClient) -> None:
    assert (await client.get("/auth/v1/.well-known/jwks.json")).json() == {"keys": []}


async def test_weak_password_and_existing_user(client: httpx.AsyncClient, db) -> None:
    weak = await client.post("/auth/v1/signup", headers=V2024,
                             json={"email": "weak@example.com", "password": "short"})
    assert weak.status_code == 422
    assert weak.json() == {"code": "weak_password",
                           "message": "Password must be at least 10 characters.",
                           "weak_password": {"reasons": ["length"],
                                             "message": "Password must be at least 10 characters."}}
    account = await make_user(db)
    again = await client.post("/auth/v1/signup", headers=V2024,
                              json={"email": account.email, "password": PASSWORD})
    assert (again.status_code, again.json()["code"]) == (422, "user_already_exists")
    invalid = await client.post("/auth/v1/signup", headers=V2024,
                                json={"email": "not-an-address", "password": PASSWORD})
    assert (invalid.status_code, invalid.json()["code"]) == (400, "email_address_invalid")


async def test_user_metadata_is_checked_not_cut(client: httpx.AsyncClient, db) -> None:
    """A name too long or an unknown time zone is refused whole; nothing is stored cut."""
    long_name = "N" * 101
    refused = await client.post("/auth/v1/signup", headers=V2024, json={
        "email": "meta@example.com", "password": PASSWORD,
        "data": {"full_name": long_name}})
    assert (refused.status_code, refused.json()["code"]) == (400, "validation_failed")
    assert "data.full_name" in refused.json()["message"]
    signed_up = await client.post("/auth/v1/signup", headers=V2024, json={
        "email": "meta@example.com", "password": PASSWORD,
        "data": {"full_name": "Ada Lovelace", "name": "  ", "time_zone": "Europe/London",
                 "theme": "dark"}})
    assert signed_up.status_code == 200
    assert signed_up.json()["user"]["user_metadata"] == {
        "display_name": "Ada Lovelace", "time_zone": "Europe/London", "locale": "en"}
    bearer = {"Authorization": f"Bearer {signed_up.json()['access_token']}", **V2024}
    for data in ({"display_name": long_name}, {"time_zone": "Mars/Olympus"}, {"name": 7}):
        update = await client.put("/auth/v1/user", headers=bearer, json={"data": data})
        assert (update.status_code, update.json()["code"]) == (400, "validation_failed"), data
    me = await client.get("/auth/v1/user", headers=bearer)
    assert me.json()["user_metadata"]["display_name"] == "Ada Lovelace"
    assert me.json()["user_metadata"]["time_zone"] == "Europe/London"


async def test_confirmation_link_redirects_with_the_session(client_with: Client) -> None:
    client, app_db = await client_with(email_confirmation_required=True,
                                       auth_redirect_urls=["myapp://auth/*"])
    signup = await client.post("/auth/v1/signup", params={"redirect_to": "myapp://auth/done"},
                               json={"email": "link@example.com", "password": PASSWORD})
    assert signup.status_code == 200 and "access_token" not in signup.json()
    assert "email_confirmed_at" not in signup.json()
    # /api/v1 applies the same rule
    refused = await client.post("/api/v1/auth/login",
                                json={"email": "link@example.com", "password": PASSWORD})
    assert (refused.status_code, refused.json()["type"]) == (400, "/problems/email-not-confirmed")
    message = await last_email(app_db, "link@example.com", "auth/verify_email")
    link = next(word for word in message.text.split() if "/auth/v1/verify?" in word)
    assert link.startswith("http://127.0.0.1:8000/auth/v1/verify?type=signup&redirect_to="
                           "myapp%3A%2F%2Fauth%2Fdone&token=")
    query = parse_qs(urlsplit(link).query)
    opened = await client.get("/auth/v1/verify", params={k: v[0] for k, v in query.items()})
    assert opened.status_code == 303
    target, _, fragment = opened.headers["location"].partition("#")
    assert target == "myapp://auth/done"
    session = parse_qs(fragment, keep_blank_values=True)
    assert (session["type"], session["token_type"]) == (["signup"], ["bearer"])
    assert claims(session["access_token"][0])["email"] == "link@example.com"
    again = await client.get("/auth/v1/verify", params={k: v[0] for k, v in query.items()})
    assert again.headers["location"] == (
        "myapp://auth/done#error=access_denied&error_code=otp_expired"
        "&error_description=Email+link+is+invalid+or+has+expired")
    elsewhere = await client.get("/auth/v1/verify", params={
        "token": "x", "type": "signup", "redirect_to": "https://evil.example/"})
    assert elsewhere.headers["location"].startswith("http://127.0.0.1:8000/#error=")
    login = await password_grant(client, "link@example.com")
    assert login.status_code == 200


async def test_signup_through_our_api_waits_for_confirmation(client_with: Client) -> None:
    client, _ = await client_with(email_confirmation_required=True)
    response = await client.post("/api/v1/auth/signup", json={
        "email": "wait@example.com", "password": PASSWORD, "display_name": "Wait"})
    assert response.status_code == 202
    assert response.json() == {"message": "Confirm your address from the link we sent, "
                                          "then sign in."}


async def test_changing_the_password_needs_the_current_one_except_after_a_reset(
    client: httpx.AsyncClient, db,
) -> None:
    account = await make_user(db)
    body = (await password_grant(client, account.email)).json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"} | V2024
    other = (await password_grant(client, account.email)).json()
    new = "a brand new passphrase 7"
    missing = await client.put("/auth/v1/user", json={"password": new}, headers=bearer)
    assert (missing.status_code, missing.json()["code"]) == (400, "current_password_required")
    wrong = await client.put("/auth/v1/user", headers=bearer,
                             json={"password": new, "current_password": "not it at all"})
    assert wrong.json()["code"] == "current_password_invalid"
    changed = await client.put("/auth/v1/user", headers=bearer,
                               json={"password": new, "current_password": PASSWORD,
                                     "data": {"display_name": "Renamed"}})
    assert changed.status_code == 200
    assert changed.json()["user_metadata"]["display_name"] == "Renamed"
    assert (await client.get("/auth/v1/user", headers=bearer)).status_code == 200
    gone = await client.get("/auth/v1/user",
                            headers={"Authorization": f"Bearer {other['access_token']}"})
    assert gone.status_code == 401  # other sessions ended

    assert (await client.post("/auth/v1/recover", json={"email": account.email})).json() == {}
    token = link_token(await last_email(db, account.email, "auth/reset_password"))
    for _ in range(2):  # three reset emails per address per hour
        assert (await client.post("/auth/v1/recover", json={"email": account.email})).json() == {}
    limited = await client.post("/auth/v1/recover", json={"email": account.email}, headers=V2024)
    assert (limited.status_code, limited.json()["code"]) == (429, "over_email_send_rate_limit")
    assert limited.json()["message"].startswith("For security purposes, you can only request")
    recovered = await client.post("/auth/v1/verify", json={"type": "recovery", "token_hash": token})
    assert [m["method"] for m in claims(recovered.json()["access_token"])["amr"]] == ["recovery"]
    reset = await client.put("/auth/v1/user", json={"password": "third passphrase here 9"},
                             headers={"Authorization": f"Bearer {recovered.json()['access_token']}"})
    assert reset.status_code == 200
    assert (await password_grant(client, account.email, "third passphrase here 9")).status_code == 200


async def test_mfa_enrol_then_step_up(client: httpx.AsyncClient, db) -> None:
    account = await make_user(db)
    body = (await password_grant(client, account.email)).json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"} | V2024
    enrolled = (await client.post("/auth/v1/factors", headers=bearer,
                                  json={"factor_type": "totp", "friendly_name": "phone"})).json()
    assert set(enrolled) == {"id", "type", "friendly_name", "totp"}
    assert enrolled["totp"]["qr_code"].startswith("<svg")
    user = (await client.get("/auth/v1/user", headers=bearer)).json()
    assert [(f["id"], f["status"]) for f in user["factors"]] == [(enrolled["id"], "unverified")]
    totp = pyotp.TOTP(enrolled["totp"]["secret"])
    path = f"/auth/v1/factors/{enrolled['id']}"
    challenge = (await client.post(f"{path}/challenge", headers=bearer, json={})).json()
    assert challenge["type"] == "totp" and challenge["expires_at"] > time.time()
    bad = await client.post(f"{path}/verify", headers=bearer,
                            json={"challenge_id": challenge["id"], "code": "000000"})
    assert (bad.status_code, bad.json()["code"]) == (422, "mfa_verification_failed")
    good = await client.post(f"{path}/verify", headers=bearer,
                             json={"challenge_id": challenge["id"], "code": totp.now()})
    assert good.status_code == 200
    assert claims(good.json()["access_token"])["aal"] == "aal2"
    used = await client.post(f"{path}/verify", headers={
        "Authorization": f"Bearer {good.json()['access_token']}"} | V2024,
        json={"challenge_id": challenge["id"], "code": totp.now()})
    assert (used.status_code, used.json()["code"]) == (422, "mfa_challenge_expired")

    aal1 = (await password_grant(client, account.email)).json()
    step = {"Authorization": f"Bearer {aal1['access_token']}"} | V2024
    assert claims(aal1["access_token"])["aal"] == "aal1"
    blocked = await client.put("/auth/v1/user", headers=step, json={"data": {"locale": "fr"}})
    assert (blocked.status_code, blocked.json()["code"]) == (403, "insufficient_aal")
    again = await client.post("/auth/v1/factors", headers=step, json={"factor_type": "totp"})
    assert again.json()["code"] == "insufficient_aal"
    other = await client.post("/auth/v1/factors/00000000-0000-0000-0000-000000000000/challenge",
                              headers=step, json={})
    assert (other.status_code, other.json()["code"]) == (404, "mfa_factor_not_found")


async def test_logout_scopes(client: httpx.AsyncClient, db) -> None:
    account = await make_user(db)
    tokens = [(await password_grant(client, account.email)).json()["access_token"]
              for _ in range(3)]

    async def alive(token: str) -> bool:
        response = await client.get("/auth/v1/user", headers={"Authorization": f"Bearer {token}"})
        return response.status_code == 200

    out = await client.post("/auth/v1/logout", params={"scope": "local"},
                            headers={"Authorization": f"Bearer {tokens[0]}"})
    assert out.status_code == 204
    assert [await alive(t) for t in tokens] == [False, True, True]
    await client.post("/auth/v1/logout", params={"scope": "others"},
                      headers={"Authorization": f"Bearer {tokens[1]}"})
    assert [await alive(t) for t in tokens] == [False, True, False]
    await client.post("/auth/v1/logout", headers={"Authorization": f"Bearer {tokens[1]}"})
    assert [await alive(t) for t in tokens] == [False, False, False]
    assert (await client.post("/auth/v1/logout")).json()["error_code"] == "no_authorization"


async def test_settings_and_health(client: httpx.AsyncClient) -> None:
    settings = (await client.get("/auth/v1/settings")).json()
    assert (settings["external"]["email"], settings["external"]["phone"],
            settings["mailer_autoconfirm"], settings["disable_signup"]) == (True, False, True, False)
    assert (await client.get("/auth/v1/health")).json()["name"] == "GoTrue"
    bad = await client.post("/auth/v1/token", params={"grant_type": "password"},
                            content=b"{not json", headers=V2024)
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_json")
    grant = await client.post("/auth/v1/token", params={"grant_type": "magic"}, json={})
    assert grant.json()["msg"] == "unsupported_grant_type"


async def test_pkce_code_needs_the_verifier_and_works_once(client: httpx.AsyncClient,
                                                           db) -> None:
    account = await make_user(db)
    verifier = "v" * 20 + "-verifier-of-the-pkce-flow-0123456789"
    challenge = sessions.pkce_challenge("s256", verifier)
    sent = await client.post("/auth/v1/otp", json={
        "email": account.email, "code_challenge": challenge, "code_challenge_method": "s256"})
    assert sent.json() == {}
    message = await last_email(db, account.email, "auth/login_code")
    link = next(word for word in message.text.split() if "/auth/v1/verify?" in word)
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert (query["type"], query["code_challenge_method"], query["code_challenge"]) == (
        "magiclink", "s256", challenge)
    opened = await client.get("/auth/v1/verify", params=query)
    location = urlsplit(opened.headers["location"])
    assert (opened.status_code, f"{location.scheme}://{location.netloc}{location.path}") == (
        303, "http://127.0.0.1:8000/")
    code = parse_qs(location.query)["code"][0]
    grant = {"grant_type": "pkce"}
    wrong = await client.post("/auth/v1/token", params=grant, headers=V2024,
                              json={"auth_code": code, "code_verifier": challenge})
    assert (wrong.status_code, wrong.json()["code"]) == (404, "flow_state_not_found")
    tampered = await client.post("/auth/v1/token", params=grant, headers=V2024, json={
        "auth_code": code.rpartition(".")[0] + ".totp", "code_verifier": verifier})
    assert tampered.status_code == 404
    good = await client.post("/auth/v1/token", params=grant,
                             json={"auth_code": code, "code_verifier": verifier})
    assert good.status_code == 200
    assert [m["method"] for m in claims(good.json()["access_token"])["amr"]] == ["magiclink"]
    again = await client.post("/auth/v1/token", params=grant, headers=V2024,
                              json={"auth_code": code, "code_verifier": verifier})
    assert (again.status_code, again.json()["code"]) == (404, "flow_state_not_found")
    bad = await client.post("/auth/v1/otp", headers=V2024, json={
        "email": account.email, "code_challenge": "short", "code_challenge_method": "s256"})
    assert (bad.status_code, bad.json()["code"]) == (400, "validation_failed")


def test_the_private_key_setting_is_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a PEM private key"):
        make_settings("sqlite:///unused.db", jwt_private_key="not a key")
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    with pytest.raises(ValidationError, match="EC P-256"):
        make_settings("sqlite:///unused.db", jwt_private_key=p384)


async def test_browsers_may_send_the_supabase_headers(client_with: Client) -> None:
    client, _ = await client_with(cors_origins=["https://app.example"])
    preflight = await client.options("/auth/v1/token", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "apikey,authorization,content-type,x-client-info,"
                                          "x-supabase-api-version"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
