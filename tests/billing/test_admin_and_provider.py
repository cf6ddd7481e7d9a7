"""Admin tools, and the API with Lemon Squeezy as the provider (respx plays it)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import respx
from sqlalchemy import select

from tests.billing.conftest import deliver, invoice_event, process_pending, subscription_event
from tests.factories import make_user, sign_in
from tests.scheduling.conftest import Market
from tutorapp.auth.roles import Role
from tutorapp.core.audit import AuditEvent
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow


async def test_admin_adjusts_credits_with_a_reason_and_reads_the_ledger(
        client: httpx.AsyncClient, db: Database, settings, market: Market) -> None:
    parent = await sign_in(client, await make_user(db, role=Role.parent))
    # paid an hour ago: credits of a subscription expire a month after the payment, so
    # a fixed date (T0) made this test fail once the calendar passed T0 + 1 month
    paid = utcnow() - timedelta(hours=1)
    for payload in (subscription_event("subscription_created", user_id=parent.user.id,
                                       updated_at=paid),
                    invoice_event("subscription_payment_success", user_id=parent.user.id,
                                  created_at=paid)):
        await deliver(client, settings, payload)
    await process_pending(db)
    url = f"/api/v1/admin/billing/users/{parent.user.id}/credits"
    missing = await client.post(url, headers=market.admin.headers, json={"delta": 2})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "reason"
    added = await client.post(url, headers=market.admin.headers,
                              json={"delta": 2, "reason": "goodwill after an outage"})
    assert added.status_code == 200, added.text
    assert added.json()["credits_available"] == 6
    removed = await client.post(url, headers=market.admin.headers,
                                json={"delta": -5, "reason": "duplicate grant"})
    assert removed.json()["credits_available"] == 1
    too_many = await client.post(url, headers=market.admin.headers,
                                 json={"delta": -2, "reason": "oops"})
    assert too_many.status_code == 422
    forbidden = await client.post(url, headers=parent.headers, json={"delta": 9, "reason": "me"})
    assert forbidden.status_code == 403
    async with db.session() as session:
        rows = list(await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "billing.credits_adjusted")
            .order_by(AuditEvent.created_at)))
    assert [(r.data["delta"], r.data["reason"], r.actor_id) for r in rows] == [
        (2, "goodwill after an outage", market.admin.id), (-5, "duplicate grant", market.admin.id)]

    ledger = await client.get(f"/api/v1/admin/billing/users/{parent.user.id}/ledger",
                              headers=market.admin.headers)
    assert ledger.status_code == 200
    body = ledger.json()
    [(account, balance)] = body["accounts"].items()
    assert account.startswith("wallet:") and balance == {"amount_minor": -10_000, "currency": "EUR"}
    assert [(line["kind"], line["amount"]["amount_minor"]) for line in body["lines"]] == [
        ("payment", -10_000)]
    subs = await client.get("/api/v1/admin/billing/subscriptions?status=active",
                            headers=market.admin.headers)
    assert [(s["user_id"], s["status"]) for s in subs.json()] == [(str(parent.user.id), "active")]


async def test_plans_are_public_and_an_unknown_plan_is_a_422(client: httpx.AsyncClient,
                                                             db: Database) -> None:
    plans = (await client.get("/api/v1/billing/plans")).json()
    assert [(p["key"], p["kind"], p["lessons"], p["price"]["amount_minor"]) for p in plans] == [
        ("monthly_4", "subscription", 4, 10_000), ("monthly_8", "subscription", 8, 19_000),
        ("pack_10", "package", 10, 24_000), ("single", "single", 1, 2_600)]
    parent = await sign_in(client, await make_user(db, role=Role.parent))
    response = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                 json={"plan": "gold"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "plan"
    tutor = await sign_in(client, await make_user(db, role=Role.tutor))
    assert (await client.post("/api/v1/billing/checkout", headers=tutor.headers,
                              json={"plan": "single"})).status_code == 403


def use_lemonsqueezy(app) -> None:
    settings = app.state.settings
    settings.payments_provider = "lemonsqueezy"
    settings.lemonsqueezy_api_key = "test-api-key"
    settings.lemonsqueezy_store_id = "4321"
    settings.lemonsqueezy_webhook_secret = "whsec-0123456789"


@respx.mock
async def test_checkout_and_webhooks_with_lemonsqueezy(app, client: httpx.AsyncClient,
                                                       db: Database) -> None:
    use_lemonsqueezy(app)
    respx.route(host="testserver").pass_through()
    route = respx.post("https://api.lemonsqueezy.com/v1/checkouts").mock(
        return_value=httpx.Response(201, json={"data": {
            "type": "checkouts", "id": "abc-123",
            "attributes": {"url": "https://tutorapp.lemonsqueezy.com/checkout/custom/abc-123?signature=s"}}}))
    parent = await sign_in(client, await make_user(db, role=Role.parent, email="pat@example.com"))
    response = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                 json={"plan": "pack_10"})
    assert response.status_code == 201, response.text
    assert response.json()["url"] == "https://tutorapp.lemonsqueezy.com/checkout/custom/abc-123?signature=s"
    sent = json.loads(route.calls.last.request.content)["data"]
    custom = sent["attributes"]["checkout_data"]["custom"]
    assert custom["user_id"] == str(parent.user.id) and custom["plan"] == "pack_10"
    assert custom["checkout_id"] == response.json()["id"]
    assert sent["relationships"]["variant"]["data"] == {"type": "variants", "id": "1003"}
    assert sent["relationships"]["store"]["data"] == {"type": "stores", "id": "4321"}

    # Webhooks are now verified with Lemon Squeezy's signing secret, not the sandbox's.
    from tests.billing.conftest import order_event, signed

    payload = order_event("order_created", user_id=parent.user.id)
    body, headers = signed(app.state.settings, payload)
    assert (await client.post("/webhooks/lemonsqueezy", content=body,
                              headers=headers)).status_code == 200
    body, headers = signed(app.state.settings, payload, secret="whatever-the-sandbox-used")
    assert (await client.post("/webhooks/lemonsqueezy", content=body,
                              headers=headers)).status_code == 401
    # The sandbox pages are gone (an app built for Lemon Squeezy does not even mount them).
    assert (await client.get("/billing/sandbox/checkout/abc",
                             headers=parent.headers)).status_code == 404


@respx.mock
async def test_a_provider_outage_is_a_503_and_a_refusal_a_409(app, client: httpx.AsyncClient,
                                                              db: Database) -> None:
    use_lemonsqueezy(app)
    respx.route(host="testserver").pass_through()
    respx.post("https://api.lemonsqueezy.com/v1/checkouts").mock(
        side_effect=[httpx.Response(503), httpx.Response(422, json={"errors": [
            {"detail": "The variant is not published.", "status": "422"}]})])
    parent = await sign_in(client, await make_user(db, role=Role.parent))
    down = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                             json={"plan": "single"})
    assert down.status_code == 503
    assert down.json()["type"] == "/problems/payments-unavailable"
    refused = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                json={"plan": "single"})
    assert refused.status_code == 409
    assert "The variant is not published." in refused.json()["detail"]
