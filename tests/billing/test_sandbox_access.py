"""The payments sandbox grants credits for nothing: it exists only where it is the
provider, and only the checkout's owner pays it, from a form with its CSRF token."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.accounts.test_browser_sessions import HTML, browser_login, csrf_of
from tests.conftest import LIVE_VENDORS, make_settings
from tests.factories import make_user, sign_in
from tutorapp.app import create_app
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.webhooks.models import InboxEvent as WebhookEvent


def route_paths(app: FastAPI) -> set[str]:
    from fastapi import routing

    expand = getattr(routing, "_iter_included_route_candidates", lambda routes: routes)
    return {getattr(route, "path", "") for route in expand(app.routes)}


def test_the_sandbox_routes_exist_only_with_the_sandbox_provider(database_url: str) -> None:
    live = make_settings(database_url, **{k: v for k, v in LIVE_VENDORS.items()
                                          if k.startswith(("payments", "lemonsqueezy"))})
    assert not any(p.startswith("/billing/sandbox") for p in route_paths(create_app(live)))
    assert "/billing/sandbox/checkout/{checkout_id}/pay" in route_paths(
        create_app(make_settings(database_url)))


async def webhooks_received(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(WebhookEvent))


async def test_only_the_checkouts_owner_pays_it_with_the_forms_csrf_token(
        client: httpx.AsyncClient, db: Database) -> None:
    owner = await sign_in(client, await make_user(db, role=Role.parent))
    started = await client.post("/api/v1/billing/checkout", json={"plan": "pack_10"},
                                headers=owner.headers)
    assert started.status_code == 201, started.text
    path = httpx.URL(started.json()["url"]).path

    # Anonymous: sign in first; nothing paid.
    anonymous = await client.post(f"{path}/pay", follow_redirects=False)
    assert anonymous.status_code == 401
    # Another signed-in user cannot see or pay it (404: the id reveals nothing).
    stranger = await sign_in(client, await make_user(db, role=Role.student))
    assert (await client.get(path, headers=stranger.headers)).status_code == 404
    theirs = await client.post(f"{path}/pay", headers=stranger.headers, follow_redirects=False)
    assert theirs.status_code == 404
    assert await webhooks_received(db) == 0
    wallet = await client.get("/api/v1/billing/wallet", headers=stranger.headers)
    assert wallet.json()["credits_available"] == 0

    # The owner's browser: the form without its token is refused, with it paid.
    assert (await browser_login(client, owner.email)).status_code == 303
    page = await client.get(path, headers=HTML)
    assert page.status_code == 200
    forged = await client.post(f"{path}/pay", headers=HTML, data={"csrf_token": "forged"},
                               follow_redirects=False)
    assert forged.status_code == 403
    assert await webhooks_received(db) == 0
    paid = await client.post(f"{path}/pay", headers=HTML, data={"csrf_token": csrf_of(page)},
                             follow_redirects=False)
    assert paid.status_code == 303
    assert paid.headers["location"] == "http://127.0.0.1:8000/app"
    assert await webhooks_received(db) == 1  # order_created, for the owner


async def test_the_mailbox_answers_only_callers_on_this_machine(app: FastAPI) -> None:
    remote = httpx.ASGITransport(app=app, raise_app_exceptions=False,
                                 client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://testserver") as far:
        assert (await far.get("/dev/mailbox", headers=HTML)).status_code == 404
    local = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("::1", 40000))
    async with httpx.AsyncClient(transport=local, base_url="http://testserver") as near:
        assert (await near.get("/dev/mailbox", headers=HTML)).status_code == 200


def test_the_mailbox_needs_the_outbox(database_url: str) -> None:
    smtp = make_settings(database_url, email_provider="smtp", smtp_host="smtp.example")
    assert not any(p.startswith("/dev/mailbox") for p in route_paths(create_app(smtp)))


async def test_only_the_subscriber_uses_the_sandbox_portal(client: httpx.AsyncClient,
                                                           db: Database) -> None:
    from tutorapp.integrations.payments.sandbox import SandboxObject

    owner = await sign_in(client, await make_user(db, role=Role.parent))
    started = await client.post("/api/v1/billing/checkout", json={"plan": "monthly_4"},
                                headers=owner.headers)
    path = httpx.URL(started.json()["url"]).path
    assert (await client.post(f"{path}/pay", headers=owner.headers,
                              follow_redirects=False)).status_code == 303
    async with db.session() as session:
        [subscription_id] = await session.scalars(
            select(SandboxObject.id).where(SandboxObject.type == "subscriptions"))
    portal = f"/billing/sandbox/portal/{subscription_id}"
    stranger = await sign_in(client, await make_user(db, role=Role.parent))
    assert (await client.get(portal, headers=stranger.headers)).status_code == 404
    renew = await client.post(f"{portal}/renew", headers=stranger.headers,
                              follow_redirects=False)
    assert renew.status_code == 404
    assert (await client.post(f"{portal}/renew", follow_redirects=False)).status_code == 401
    events = await webhooks_received(db)
    assert (await client.get(portal, headers={**owner.headers, **HTML})).status_code == 200
    assert (await client.post(f"{portal}/renew", headers=owner.headers,
                              follow_redirects=False)).status_code == 303
    assert await webhooks_received(db) == events + 2  # the renewal invoice and update
