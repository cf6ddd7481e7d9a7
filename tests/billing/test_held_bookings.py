"""Credits arriving pay the held bookings they were bought for (every plan kind,
weekly series, parents), the pay page shows the live state, the reconciliation
job recovers lost webhooks, and vendor calls run outside the request's transaction."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from tests.accounts.test_browser_sessions import HTML, browser_login, csrf_of
from tests.billing.conftest import deliver, order_event, process_pending
from tests.billing.test_admin_and_provider import use_lemonsqueezy
from tests.billing.test_flow import EVERY_DAY, family, pin, settle
from tests.factories import make_user, sign_in
from tests.scheduling.conftest import Market, approved_tutor
from tutorapp.auth.roles import Role
from tutorapp.billing import reconcile
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.integrations.payments.lemonsqueezy import LemonSqueezyProvider
from tutorapp.integrations.payments.sandbox import SandboxProvider
from tutorapp.webhooks.models import InboxEvent


def real_now(app) -> datetime:
    """Webhooks are applied at the real time: the app's clock follows it."""
    now = utcnow().replace(second=0, microsecond=0)
    pin(app, now)
    return now


async def statuses(client: httpx.AsyncClient, who, ids: list[str]) -> list[str]:
    return [(await client.get(f"/api/v1/bookings/{i}", headers=who.headers)).json()["status"]
            for i in ids]


async def buy_in_sandbox(client: httpx.AsyncClient, who, plan: str, booking_id: str) -> str:
    started = await client.post("/api/v1/billing/checkout", headers=who.headers,
                                json={"plan": plan, "booking_id": booking_id})
    assert started.status_code == 201, started.text
    path = httpx.URL(started.json()["url"]).path
    assert (await client.post(f"{path}/pay", headers=who.headers)).status_code == 303
    return path


async def test_a_parent_buying_a_subscription_for_a_held_lesson_confirms_it(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    parent, child = await family(app, client, db)
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "student_id": str(child.user.id)})
    booking_id = booked.json()["id"]
    assert booked.json()["status"] == "held"
    await buy_in_sandbox(client, parent, "monthly_4", booking_id)
    # The credits arrive with the first invoice: the same job pays the lesson.
    assert await process_pending(db) == [
        "subscription order: booked from its invoice", "subscription active",
        "period paid: credits granted; booking confirmed"]
    assert await statuses(client, parent, [booking_id]) == ["confirmed"]
    wallet = (await client.get("/api/v1/billing/wallet", headers=parent.headers)).json()
    assert wallet["credits_available"] == 3


async def test_a_student_buying_a_package_for_a_weekly_series_confirms_every_lesson(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    app.state.settings.booking_payment_required = True
    student = await sign_in(client, await make_user(db, role=Role.student, email="sam@example.com"))
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    series = await client.post("/api/v1/series", headers=student.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "count": 4})
    assert series.status_code == 201, series.text
    ids = [b["id"] for b in series.json()["bookings"]]
    assert await statuses(client, student, ids) == ["held"] * 4
    # Bought from the third lesson's page: the whole held series is paid, soonest first.
    await buy_in_sandbox(client, student, "pack_10", ids[2])
    assert await process_pending(db) == ["order paid: credits granted; 4 of 4 bookings confirmed"]
    assert await statuses(client, student, ids) == ["confirmed"] * 4
    wallet = (await client.get("/api/v1/billing/wallet", headers=student.headers)).json()
    assert wallet["credits_available"] == 6
    # A redelivery changes nothing: each lesson took exactly one credit.
    assert await process_pending(db) == []


async def test_credits_short_of_the_series_pay_the_soonest_lessons(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    app.state.settings.booking_payment_required = True
    student = await sign_in(client, await make_user(db, role=Role.student))
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    series = await client.post("/api/v1/series", headers=student.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "count": 3})
    ids = [b["id"] for b in series.json()["bookings"]]
    await buy_in_sandbox(client, student, "single", ids[1])
    assert await process_pending(db) == ["order paid: credits granted; 1 of 3 bookings confirmed"]
    assert await statuses(client, student, ids) == ["confirmed", "held", "held"]


@respx.mock
async def test_a_checkout_carries_the_held_bookings_and_expires_with_the_hold(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    parent, child = await family(app, client, db)
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    series = await client.post("/api/v1/series", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "count": 2, "student_id": str(child.user.id)})
    ids = [b["id"] for b in series.json()["bookings"]]
    use_lemonsqueezy(app)
    respx.route(host="testserver").pass_through()
    route = respx.post("https://api.lemonsqueezy.com/v1/checkouts").mock(
        return_value=httpx.Response(201, json={"data": {"type": "checkouts", "id": "c-1",
                                                        "attributes": {"url": "https://x.test/c"}}}))
    started = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                json={"plan": "pack_10", "booking_id": ids[0]})
    assert started.status_code == 201, started.text
    attributes = json.loads(route.calls.last.request.content)["data"]["attributes"]
    assert attributes["checkout_data"]["custom"]["booking_ids"] == ",".join(ids)
    hold_end = now + timedelta(minutes=app.state.settings.booking_hold_minutes)
    assert attributes["expires_at"] == hold_end.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


async def test_the_sandbox_refuses_to_pay_an_expired_checkout(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    parent, child = await family(app, client, db)
    now = real_now(app) - timedelta(hours=1)  # the hold ended an hour ago, really
    pin(app, now)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "student_id": str(child.user.id)})
    started = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                json={"plan": "single", "booking_id": booked.json()["id"]})
    path = httpx.URL(started.json()["url"]).path
    refused = await client.post(f"{path}/pay", headers=parent.headers)
    assert refused.status_code == 409
    assert "expired" in refused.json()["detail"]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(InboxEvent)) == 0


async def test_x_event_name_must_match_the_body(client: httpx.AsyncClient, db: Database,
                                                settings) -> None:
    from tests.billing.conftest import signed

    parent = await make_user(db, role=Role.parent)
    body, headers = signed(settings, order_event("order_created", user_id=parent.user.id))
    headers["X-Event-Name"] = "order_refunded"
    response = await client.post("/webhooks/lemonsqueezy", content=body, headers=headers)
    assert response.status_code == 400
    assert "X-Event-Name" in response.json()["detail"]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(InboxEvent)) == 0
    del headers["X-Event-Name"]
    missing = await client.post("/webhooks/lemonsqueezy", content=body, headers=headers)
    assert missing.status_code == 400 and missing.json()["detail"] == "Missing X-Event-Name."
    headers["X-Event-Name"] = "order_created"
    assert (await client.post("/webhooks/lemonsqueezy", content=body,
                              headers=headers)).status_code == 200


# --- the pay page --------------------------------------------------------------------------


async def test_after_checkout_the_pay_page_offers_no_second_payment_and_follows_the_state(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    app.state.settings.booking_payment_required = True
    student = await make_user(db, role=Role.student)
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    api = await sign_in(client, student)
    booked = await client.post("/api/v1/bookings", headers=api.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60})
    booking_id = booked.json()["id"]
    await browser_login(client, student.email)
    before = await client.get(f"/app/bookings/{booking_id}", headers=HTML)
    plans = len(app.state.settings.billing_plans)
    assert before.text.count(f'action="/app/bookings/{booking_id}/checkout"') == plans
    # Back from the provider's checkout (?paid=1), the webhook not yet applied:
    back = await client.get(f"/app/bookings/{booking_id}?paid=1", headers=HTML)
    assert "Payment received; confirming your lesson" in back.text
    assert "/checkout\"" not in back.text and "Pay with 1 credit" not in back.text
    assert f'hx-get="/app/bookings/{booking_id}/payment" hx-trigger="every 2s"' in back.text
    polled = await client.get(f"/app/bookings/{booking_id}/payment", headers=HTML)
    assert polled.status_code == 204 and "HX-Redirect" not in polled.headers  # still held
    # The payment lands: the next poll sends the page to the confirmed booking.
    started = await client.post("/api/v1/billing/checkout", headers=api.headers,
                                json={"plan": "single", "booking_id": booking_id})
    assert started.status_code == 201, started.text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as provider_side:
        paid = await provider_side.post(f"{httpx.URL(started.json()['url']).path}/pay",
                                        headers=api.headers)
    assert paid.status_code == 303
    assert await process_pending(db) == ["order paid: credits granted; booking confirmed"]
    polled = await client.get(f"/app/bookings/{booking_id}/payment", headers=HTML)
    assert polled.headers["HX-Redirect"] == f"/app/bookings/{booking_id}?paid=1"
    done = await client.get(polled.headers["HX-Redirect"], headers=HTML)
    assert "Payment received: your lesson is confirmed." in done.text


async def test_paying_with_a_credit_after_the_job_paid_it_is_no_error(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    from tests.billing.test_flow import subscribe_in_sandbox

    parent, child = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "student_id": str(child.user.id)})
    booking_id = booked.json()["id"]
    await browser_login(client, parent.email)
    page = await client.get(f"/app/bookings/{booking_id}", headers=HTML)
    assert "Pay with 1 credit" in page.text
    assert f'hx-get="/app/bookings/{booking_id}/payment" hx-trigger="every 5s"' in page.text
    # The settling job pays it from the wallet before the click arrives.
    assert await settle(db, booking_id, now) == "booking confirmed"
    polled = await client.get(f"/app/bookings/{booking_id}/payment", headers=HTML)
    assert polled.headers["HX-Redirect"] == f"/app/bookings/{booking_id}?paid=1"
    clicked = await client.post(f"/app/bookings/{booking_id}/pay", headers=HTML,
                                data={"csrf_token": csrf_of(page)})
    assert clicked.status_code == 303
    assert clicked.headers["location"] == f"/app/bookings/{booking_id}?paid=1"
    again = await client.post(f"/api/v1/billing/bookings/{booking_id}/pay", headers=parent.headers)
    assert again.status_code == 200
    assert again.json() == {"booking_id": booking_id, "status": "confirmed"}
    wallet = (await client.get("/api/v1/billing/wallet", headers=parent.headers)).json()
    assert wallet["credits_available"] == 3  # one credit, however often it is paid


# --- reconciliation -------------------------------------------------------------------------


async def test_reconciliation_applies_the_payment_whose_webhooks_were_lost(
        app, client: httpx.AsyncClient, db: Database, market: Market, monkeypatch) -> None:
    async def lost(self, outgoing) -> None:
        outgoing.clear()

    monkeypatch.setattr(SandboxProvider, "_post_all", lost)
    parent, child = await family(app, client, db)
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "student_id": str(child.user.id)})
    booking_id = booked.json()["id"]
    await buy_in_sandbox(client, parent, "monthly_4", booking_id)
    assert await process_pending(db) == []  # every webhook was lost
    counts = await reconcile.run(db, db.settings, now=utcnow())
    assert counts == {"stored": 2, "unmatched": 0, "seen": 3}  # subscription + invoice
    outcomes = await process_pending(db)
    assert outcomes[-1] == "period paid: credits granted; booking confirmed"
    assert await statuses(client, parent, [booking_id]) == ["confirmed"]
    # Run again: the inbox has it all now.
    assert (await reconcile.run(db, db.settings, now=utcnow()))["stored"] == 0
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 3


async def test_reconciliation_recovers_a_lost_first_invoice_and_pays_the_held_lesson(
        app, client: httpx.AsyncClient, db: Database, market: Market, monkeypatch) -> None:
    """Only the invoice is lost: the order already marked the checkout paid, and the
    invoice still pays the lesson the subscription was bought for."""
    original = SandboxProvider._post_all

    async def without_invoices(self, outgoing) -> None:
        outgoing[:] = [w for w in outgoing if w.event_name != "subscription_payment_success"]
        await original(self, outgoing)

    monkeypatch.setattr(SandboxProvider, "_post_all", without_invoices)
    parent, child = await family(app, client, db)
    now = real_now(app)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat(),
        "length": 60, "student_id": str(child.user.id)})
    booking_id = booked.json()["id"]
    await buy_in_sandbox(client, parent, "monthly_4", booking_id)
    assert await process_pending(db) == ["subscription order: booked from its invoice",
                                         "subscription active"]
    assert await statuses(client, parent, [booking_id]) == ["held"]
    counts = await reconcile.run(db, db.settings, now=utcnow())
    assert counts == {"stored": 1, "unmatched": 0, "seen": 3}
    assert await process_pending(db) == ["period paid: credits granted; booking confirmed"]
    assert await statuses(client, parent, [booking_id]) == ["confirmed"]


async def test_a_webhook_arriving_after_reconciliation_is_a_duplicate(
        app, client: httpx.AsyncClient, db: Database, settings) -> None:
    """The reconciled event has the real delivery's dedupe key."""
    parent = await make_user(db, role=Role.parent, email="pat@example.com")
    payload = order_event("order_created", user_id=parent.user.id)
    async with db.unit_of_work() as session:  # the checkout we started for it
        from tutorapp.billing.models import Checkout

        session.add(Checkout(id=uuid.uuid4(), user_id=parent.user.id, plan_key="pack_10",
                             provider="lemonsqueezy", created_at=datetime(2026, 11, 1, tzinfo=UTC),
                             custom={"user_id": str(parent.user.id)}))
    async with db.unit_of_work() as session:
        counts = await reconcile.store_missing(session, db.settings, {
            "orders": [(payload["data"]["id"], payload["data"]["attributes"])]})
    assert counts["stored"] == 1
    assert await process_pending(db) == ["order paid: credits granted"]
    late = await deliver(client, settings, payload)
    assert late.json()["status"] == "duplicate"


# --- vendor calls outside the transaction ------------------------------------------------


async def no_transaction_open(db: Database, database_url: str) -> None:
    """Raise if some connection holds a transaction open (the request's)."""
    if db.dialect == "sqlite":
        other = sqlite3.connect(make_url(database_url).database, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # fails while anyone holds the write lock
            other.rollback()
        finally:
            other.close()
        return
    async with db.primary.connect() as connection:
        waiting = await connection.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"))
    assert waiting == 0, f"{waiting} transaction(s) open during the vendor call"


@respx.mock
async def test_vendor_calls_run_with_no_transaction_open(
        app, client: httpx.AsyncClient, db: Database, database_url: str, monkeypatch) -> None:
    checked: list[str] = []
    original = LemonSqueezyProvider._call

    async def spying(self, method, path, body=None, **kwargs):
        await no_transaction_open(db, database_url)
        checked.append(f"{method} {path}")
        return await original(self, method, path, body, **kwargs)

    monkeypatch.setattr(LemonSqueezyProvider, "_call", spying)
    use_lemonsqueezy(app)
    respx.route(host="testserver").pass_through()
    respx.post("https://api.lemonsqueezy.com/v1/checkouts").mock(return_value=httpx.Response(
        201, json={"data": {"type": "checkouts", "id": "c-1", "attributes": {"url": "https://x.test/c"}}}))
    parent = await sign_in(client, await make_user(db, role=Role.parent))
    started = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                json={"plan": "single"})
    assert started.status_code == 201, started.text
    # a subscription mirrored from its webhook, then cancelled through the API
    from tests.billing.conftest import subscription_event

    await deliver(client, app.state.settings,
                  subscription_event("subscription_created", user_id=parent.user.id))
    await process_pending(db)
    sub_id = (await client.get("/api/v1/billing/subscriptions", headers=parent.headers)).json()[0]["id"]
    cancelled = subscription_event("subscription_cancelled", user_id=parent.user.id,
                                   status="cancelled", cancelled=True,
                                   updated_at=utcnow(), ends_at=utcnow() + timedelta(days=20))
    respx.delete("https://api.lemonsqueezy.com/v1/subscriptions/501").mock(
        return_value=httpx.Response(200, json={"data": cancelled["data"]}))
    response = await client.post(f"/api/v1/billing/subscriptions/{sub_id}/cancel",
                                 headers=parent.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    for kind in ("orders", "subscriptions", "subscription-invoices"):
        respx.get(f"https://api.lemonsqueezy.com/v1/{kind}").mock(return_value=httpx.Response(
            200, json={"meta": {"page": {"currentPage": 1, "lastPage": 1}}, "data": []}))
    assert (await reconcile.run(db, app.state.settings, now=utcnow()))["seen"] == 0
    assert checked == ["POST checkouts", "DELETE subscriptions/501", "GET orders",
                       "GET subscriptions", "GET subscription-invoices"]


@pytest.fixture(autouse=True)
def _no_enqueue(monkeypatch) -> None:
    """No job worker runs here: the tests apply the inbox themselves."""
    from tutorapp.jobs import queue

    async def nothing(*args, **kwargs) -> str:
        return "not started"

    monkeypatch.setattr(queue, "enqueue", nothing)
