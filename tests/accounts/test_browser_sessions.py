"""Cookie sessions and CSRF, through the sign-in pages as a browser uses them."""

import re
from datetime import timedelta

import httpx
from sqlalchemy import update

from tests.conftest import LIVE_VENDORS, _empty_all_tables, make_settings
from tests.factories import PASSWORD, make_user, totp_code
from tutorapp.accounts.models import AuthSession
from tutorapp.app import create_app
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow

HTML = {"accept": "text/html"}


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


async def browser_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD,
                        next: str = "/app") -> httpx.Response:
    page = await client.get("/app/login", params={"next": next}, headers=HTML)
    return await client.post("/app/login", headers=HTML, data={
        "email": email, "password": password, "next": next, "csrf_token": csrf_of(page)})


async def test_login_form_needs_its_csrf_token(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db)
    await client.get("/app/login", headers=HTML)
    forged = await client.post("/app/login", headers=HTML, data={
        "email": account.email, "password": PASSWORD, "csrf_token": "guess"})
    assert forged.status_code == 403
    assert "tutorapp_session" not in forged.cookies


async def test_login_sets_an_httponly_lax_cookie_and_opens_the_app(
    client: httpx.AsyncClient, db: Database
) -> None:
    account = await make_user(db, display_name="Wanda")
    response = await browser_login(client, account.email)
    assert response.status_code == 303
    assert response.headers["location"] == "/app"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tutorapp_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    home = await client.get("/app", headers=HTML)
    assert home.status_code == 200
    assert "Hello, Wanda" in home.text


async def test_wrong_password_shows_the_form_again(client: httpx.AsyncClient,
                                                   db: Database) -> None:
    account = await make_user(db)
    response = await browser_login(client, account.email, "not the password")
    assert response.status_code == 400
    assert "Wrong email or password." in response.text
    assert 'value="' + account.email + '"' in response.text


async def test_anonymous_page_visit_goes_to_sign_in_and_back(client: httpx.AsyncClient,
                                                            db: Database) -> None:
    response = await client.get("/app/account/security", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/app/login?next=%2Fapp%2Faccount%2Fsecurity"
    account = await make_user(db)
    login = await browser_login(client, account.email, next="/app/account/security")
    assert login.headers["location"] == "/app/account/security"


async def test_next_never_leaves_the_site(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db)
    login = await browser_login(client, account.email, next="//evil.example/")
    assert login.headers["location"] == "/app"


async def test_each_login_gets_a_new_session_id(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db)
    first = (await browser_login(client, account.email)).cookies["tutorapp_session"]
    client.cookies.delete("tutorapp_session")
    second = (await browser_login(client, account.email)).cookies["tutorapp_session"]
    assert first != second


async def test_cookie_api_calls_that_change_state_need_the_csrf_header(
    client: httpx.AsyncClient, db: Database
) -> None:
    account = await make_user(db)
    await browser_login(client, account.email)
    assert (await client.get("/api/v1/me")).status_code == 200  # reads need no token
    refused = await client.patch("/api/v1/me", json={"display_name": "Changed"})
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/csrf"
    page = await client.get("/app", headers=HTML)
    allowed = await client.patch("/api/v1/me", json={"display_name": "Changed"},
                                 headers={"X-CSRF-Token": csrf_of(page)})
    assert allowed.status_code == 200
    assert allowed.json()["display_name"] == "Changed"


async def test_logout_form_ends_the_session(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db)
    await browser_login(client, account.email)
    page = await client.get("/app", headers=HTML)
    cookie = client.cookies["tutorapp_session"]
    out = await client.post("/app/logout", headers=HTML, data={"csrf_token": csrf_of(page)})
    assert out.status_code == 303
    client.cookies.set("tutorapp_session", cookie)  # a copied cookie is dead too
    assert (await client.get("/app", headers=HTML)).status_code == 303


async def test_idle_session_expires(client: httpx.AsyncClient, db: Database, settings) -> None:
    account = await make_user(db)
    await browser_login(client, account.email)
    async with db.unit_of_work() as session:
        await session.execute(update(AuthSession).values(
            last_seen_at=utcnow() - timedelta(minutes=settings.session_idle_timeout_minutes + 1)))
    assert (await client.get("/app", headers=HTML)).status_code == 303


async def test_absolute_lifetime_ends_an_active_session(client: httpx.AsyncClient,
                                                        db: Database) -> None:
    account = await make_user(db)
    await browser_login(client, account.email)
    async with db.unit_of_work() as session:
        await session.execute(update(AuthSession).values(expires_at=utcnow()))
    assert (await client.get("/app", headers=HTML)).status_code == 303


async def test_mfa_account_is_sent_to_the_code_page(client: httpx.AsyncClient,
                                                    db: Database) -> None:
    account = await make_user(db, totp=True)
    login = await browser_login(client, account.email)
    assert login.headers["location"] == "/app/mfa?next=%2Fapp"
    assert (await client.get("/app", headers=HTML)).headers["location"].startswith("/app/mfa")
    page = await client.get("/app/mfa", headers=HTML)
    verified = await client.post("/app/mfa", headers=HTML, data={
        "code": totp_code(account), "next": "/app", "csrf_token": csrf_of(page)})
    assert verified.status_code == 303
    assert (await client.get("/app", headers=HTML)).status_code == 200


async def test_signup_page_creates_the_account_and_signs_in(client: httpx.AsyncClient,
                                                            db: Database) -> None:
    page = await client.get("/app/signup", headers=HTML)
    response = await client.post("/app/signup", headers=HTML, data={
        "display_name": "Xena", "email": "xena@example.com", "password": PASSWORD,
        "role": "parent", "time_zone": "Europe/Paris", "csrf_token": csrf_of(page)})
    assert response.status_code == 303
    home = await client.get("/app", headers=HTML)
    assert "Hello, Xena" in home.text
    assert "Confirm your address" in home.text
    me = (await client.get("/api/v1/me")).json()
    assert (me["role"], me["time_zone"]) == ("parent", "Europe/Paris")


async def test_staging_uses_host_prefixed_secure_cookies(database_url: str) -> None:
    app = create_app(make_settings(database_url, **LIVE_VENDORS, profile="staging"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="https://testserver"
    ) as client:
        account = await make_user(app.state.database)
        page = await client.get("/app/login", headers=HTML)
        assert page.headers["set-cookie"].startswith("__Host-tutorapp_form=")
        response = await client.post("/app/login", headers=HTML, data={
            "email": account.email, "password": PASSWORD, "csrf_token": csrf_of(page)})
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-tutorapp_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
        assert "Domain" not in cookie
        await _empty_all_tables(app)
