"""The Lemon Squeezy webhook: signature, inbox, duplicates, ordering, refunds, recovery."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from tests.billing.conftest import (
    T0,
    deliver,
    invoice_event,
    order_event,
    process,
    process_pending,
    signed,
    subscription_event,
)
from tests.factories import make_user
from tutorapp.auth.roles import Role
from tutorapp.billing import ledger
from tutorapp.billing.models import (
    CreditLot,
    Payment,
    Subscription,
    Wallet,
)
from tutorapp.core.audit import AuditEvent
from tutorapp.core.db import Database
from tutorapp.webhooks.models import InboxEvent as WebhookEvent


async def count(db: Database, model) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def wallet_of(db: Database, owner_id) -> Wallet:
    async with db.session() as session:
        return await session.scalar(select(Wallet).where(Wallet.owner_id == owner_id))


async def lots(db: Database) -> list[CreditLot]:
    async with db.session() as session:
        return list(await session.scalars(select(CreditLot).order_by(CreditLot.created_at)))


async def balances(db: Database) -> dict:
    async with db.session() as session:
        return {k: v for k, v in (await ledger.balances(session)).items() if v}


async def test_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    payload = order_event("order_created", user_id=parent.user.id)
    body, headers = signed(settings, payload, secret="not-the-secret")
    wrong = await client.post("/webhooks/lemonsqueezy", content=body, headers=headers)
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    missing = await client.post("/webhooks/lemonsqueezy", content=body,
                                headers={"Content-Type": "application/json"})
    assert missing.status_code == 401
    # A valid signature over a different body does not verify this one.
    _, other = signed(settings, order_event("order_created", order_id="1", user_id=parent.user.id))
    tampered = await client.post("/webhooks/lemonsqueezy", content=body, headers=other)
    assert tampered.status_code == 401
    assert await count(db, WebhookEvent) == 0


async def test_signed_but_malformed_bodies_get_400(client: httpx.AsyncClient, db: Database,
                                                  settings) -> None:
    from tutorapp.integrations.payments.base import signature

    for body in (b"not json", b'{"meta": {}}', b'{"meta": {"event_name": 1}, "data": {}}'):
        response = await client.post("/webhooks/lemonsqueezy", content=body, headers={
            "X-Signature": signature(settings.payments_webhook_secret, body)})
        assert response.status_code == 400, response.text
    assert await count(db, WebhookEvent) == 0


async def test_a_package_order_grants_credits_books_the_payment_and_sends_a_receipt(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent, email="pat@example.com")
    response = await deliver(client, settings,
                             order_event("order_created", user_id=parent.user.id, tax=4_000))
    assert response.status_code == 200
    assert response.json()["status"] == "stored"
    assert await process_pending(db) == ["order paid: credits granted"]
    wallet = await wallet_of(db, parent.user.id)
    [lot] = await lots(db)
    assert (lot.granted, lot.remaining, lot.value_minor, lot.plan_key) == (10, 10, 20_000, "pack_10")
    assert lot.expires_at == T0.replace(month=5, year=2027)  # six months later
    assert await balances(db) == {
        ("cash", "EUR"): 24_000, (ledger.wallet(wallet.id), "EUR"): -20_000,
        ("tax_collected", "EUR"): -4_000,
    }
    async with db.session() as session:
        receipt = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "billing.payment_received"))
        assert receipt is not None and receipt.data["total_minor"] == 24_000
    from tests.factories import last_email

    email = await last_email(db, "pat@example.com", "billing/receipt")
    assert email.subject == "Your TutorApp receipt: 10 lessons (6 months)"
    assert "Amount: €240.00" in email.text and "of which tax: €40.00" in email.text
    invoices = await client.get("/api/v1/billing/invoices",
                                headers=(await _signed_in(client, parent)).headers)
    assert [(i["plan"], i["total"], i["status"]) for i in invoices.json()] == [
        ("pack_10", {"amount_minor": 24_000, "currency": "EUR"}, "paid")]


async def _signed_in(client, account):
    from tests.factories import sign_in

    return await sign_in(client, account)


async def test_a_duplicate_delivery_changes_nothing(client: httpx.AsyncClient, db: Database,
                                                   settings) -> None:
    parent = await make_user(db, role=Role.parent)
    sub = subscription_event("subscription_created", user_id=parent.user.id)
    invoice = invoice_event("subscription_payment_success", user_id=parent.user.id)
    first = [await deliver(client, settings, p) for p in (sub, invoice)]
    assert [r.json()["status"] for r in first] == ["stored", "stored"]
    await process_pending(db)
    before = (await balances(db), [(lot.granted, lot.remaining) for lot in await lots(db)])
    again = [await deliver(client, settings, p) for p in (sub, invoice, invoice)]
    assert [r.status_code for r in again] == [200, 200, 200]
    assert [r.json()["status"] for r in again] == ["duplicate"] * 3
    assert [r.json()["id"] for r in again[1:]] == [first[1].json()["id"]] * 2
    assert await process_pending(db) == []
    # Running the job for an already processed event again is a no-op, too.
    assert await process(db, first[1].json()["id"]) == "skip: processed"
    assert (await balances(db), [(lot.granted, lot.remaining) for lot in await lots(db)]) == before
    assert before[1] == [(4, 4)]
    assert await count(db, WebhookEvent) == 2


async def test_out_of_order_deliveries_never_move_a_subscription_backwards(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    created = subscription_event("subscription_created", user_id=parent.user.id, updated_at=T0)
    cancelled = subscription_event(
        "subscription_cancelled", user_id=parent.user.id, status="cancelled", cancelled=True,
        updated_at=T0 + timedelta(days=3), ends_at=T0 + timedelta(days=30))
    stale_update = subscription_event("subscription_updated", user_id=parent.user.id,
                                      status="active", updated_at=T0 + timedelta(days=1))
    ids = [(await deliver(client, settings, p)).json()["id"]
           for p in (cancelled, created, stale_update)]
    outcomes = [await process(db, event_id) for event_id in ids]
    assert outcomes == ["subscription cancelled", "stale: an equal or newer state is applied",
                        "stale: an equal or newer state is applied"]
    async with db.session() as session:
        subscription = await session.scalar(select(Subscription))
    assert (subscription.status, subscription.cancelled) == ("cancelled", True)
    assert subscription.ends_at == T0 + timedelta(days=30)
    assert subscription.provider_updated_at == T0 + timedelta(days=3)


async def test_an_invoice_before_its_subscription_waits_for_it(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    invoice = (await deliver(client, settings, invoice_event(
        "subscription_payment_success", user_id=parent.user.id))).json()["id"]
    assert await process(db, invoice) == "deferred"
    assert await lots(db) == []
    await deliver(client, settings, subscription_event("subscription_created",
                                                       user_id=parent.user.id))
    # In arrival order: the invoice waits again, the subscription, then the invoice.
    assert await process_pending(db) == ["deferred", "subscription active",
                                         "period paid: credits granted"]
    [lot] = await lots(db)
    assert (lot.granted, lot.expires_at) == (4, T0.replace(month=12))


async def test_a_refund_is_a_reversing_entry_and_takes_back_unused_credits(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    await deliver(client, settings, order_event("order_created", user_id=parent.user.id))
    await process_pending(db)
    wallet = await wallet_of(db, parent.user.id)
    # Partial refund of 6000 of 24000: a quarter of 10 credits, rounded up, is 3.
    await deliver(client, settings, order_event(
        "order_refunded", user_id=parent.user.id, status="partial_refund",
        refunded_amount=6_000, updated_at=T0 + timedelta(days=1)))
    assert await process_pending(db) == ["refunded 6000"]
    [lot] = await lots(db)
    assert (lot.granted, lot.remaining) == (10, 7)
    assert await balances(db) == {("cash", "EUR"): 18_000,
                                  (ledger.wallet(wallet.id), "EUR"): -18_000}
    # The rest is refunded later; a repeated delivery of it changes nothing more.
    full = order_event("order_refunded", user_id=parent.user.id, status="refunded",
                       refunded_amount=24_000, updated_at=T0 + timedelta(days=2))
    await deliver(client, settings, full)
    await deliver(client, settings, full)
    assert await process_pending(db) == ["refunded 18000"]
    [lot] = await lots(db)
    assert lot.remaining == 0
    assert await balances(db) == {}
    async with db.session() as session:
        payment = await session.scalar(select(Payment))
        assert (payment.status, payment.refunded_minor) == ("refunded", 24_000)
        refunds = list(await session.scalars(
            select(AuditEvent.data).where(AuditEvent.action == "billing.refunded")))
        assert [r["amount_minor"] for r in refunds] == [6_000, 18_000]


async def test_past_due_then_recovered_grants_the_period_once(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    uid = parent.user.id
    month = timedelta(days=30)
    events = [
        subscription_event("subscription_created", user_id=uid, updated_at=T0),
        invoice_event("subscription_payment_success", user_id=uid, invoice_id="7001"),
        # The renewal charge fails: the invoice stays pending, the subscription is past due.
        invoice_event("subscription_payment_failed", user_id=uid, invoice_id="7002",
                      status="pending", billing_reason="renewal", created_at=T0 + month),
        subscription_event("subscription_updated", user_id=uid, status="past_due",
                           updated_at=T0 + month),
    ]
    for payload in events:
        await deliver(client, settings, payload)
    await process_pending(db)
    async with db.session() as session:
        assert (await session.scalar(select(Subscription))).status == "past_due"
    assert [lot.granted for lot in await lots(db)] == [4]
    recovered = [
        invoice_event("subscription_payment_recovered", user_id=uid, invoice_id="7002",
                      billing_reason="renewal", created_at=T0 + month,
                      updated_at=T0 + month + timedelta(days=2)),
        # Lemon Squeezy also sends payment_success for the same invoice: granted once.
        invoice_event("subscription_payment_success", user_id=uid, invoice_id="7002",
                      billing_reason="renewal", created_at=T0 + month,
                      updated_at=T0 + month + timedelta(days=2, seconds=1)),
        subscription_event("subscription_updated", user_id=uid, status="active",
                           updated_at=T0 + month + timedelta(days=2),
                           renews_at=T0 + 2 * month),
    ]
    for payload in recovered:
        await deliver(client, settings, payload)
    assert await process_pending(db) == ["period paid: credits granted", "payment known",
                                         "subscription active"]
    async with db.session() as session:
        subscription = await session.scalar(select(Subscription))
        assert (subscription.status, subscription.renews_at) == ("active", T0 + 2 * month)
        actions = list(await session.scalars(
            select(AuditEvent.action).where(AuditEvent.subject_type == "subscription")
            .order_by(AuditEvent.created_at)))
    assert actions == ["billing.subscription_active", "billing.payment_failed",
                       "billing.subscription_past_due", "billing.subscription_active"]
    assert [lot.granted for lot in await lots(db)] == [4, 4]
    wallet = await wallet_of(db, uid)
    assert await balances(db) == {("cash", "EUR"): 20_000,
                                  (ledger.wallet(wallet.id), "EUR"): -20_000}


async def test_expiry_turns_unused_subscription_credits_into_breakage(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    uid = parent.user.id
    for payload in (subscription_event("subscription_created", user_id=uid),
                    invoice_event("subscription_payment_success", user_id=uid),
                    subscription_event("subscription_expired", user_id=uid, status="expired",
                                       updated_at=T0 + timedelta(days=40))):
        await deliver(client, settings, payload)
    assert await process_pending(db) == ["subscription active", "period paid: credits granted",
                                         "subscription expired"]
    [lot] = await lots(db)
    assert (lot.remaining, lot.consumed, lot.expired_at is not None) == (0, 4, True)
    assert await balances(db) == {("cash", "EUR"): 10_000, ("breakage", "EUR"): -10_000}


async def test_unknown_events_and_variants_are_stored_and_ignored(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    license_key = {"meta": {"event_name": "license_key_created"},
                   "data": {"type": "license-keys", "id": "1", "attributes": {"status": "active"}}}
    await deliver(client, settings, license_key)
    await deliver(client, settings, order_event("order_created", user_id=parent.user.id,
                                                variant_id=999))
    assert await process_pending(db) == ["ignored: license_key_created is not handled",
                                         "ignored: unknown variant 999"]
    assert await lots(db) == []


async def test_what_each_subscription_state_allows(client: httpx.AsyncClient, db: Database,
                                                   settings) -> None:
    from tutorapp.billing import credits

    parent = await make_user(db, role=Role.parent)
    uid = parent.user.id
    for payload in (subscription_event("subscription_created", user_id=uid),
                    invoice_event("subscription_payment_success", user_id=uid)):
        await deliver(client, settings, payload)
    await process_pending(db)
    wallet = await wallet_of(db, uid)
    now = T0 + timedelta(days=1)
    ends = T0 + timedelta(days=20)
    expected = [("past_due", now, 4), ("paused", now, 0), ("unpaid", now, 0),
                ("active", now, 4), ("cancelled", now, 4), ("cancelled", ends, 0)]
    for hour, (status, when, spendable) in enumerate(expected, start=1):
        name = {"paused": "subscription_paused", "cancelled": "subscription_cancelled"}.get(
            status, "subscription_updated")
        await deliver(client, settings, subscription_event(
            name, user_id=uid, status=status, cancelled=status == "cancelled",
            ends_at=ends if status == "cancelled" else None,
            updated_at=T0 + timedelta(hours=hour)))
        await process_pending(db)
        async with db.session() as session:
            assert await credits.available(session, wallet.id, when) == spendable, status


async def test_an_unreadable_payload_is_kept_with_the_reason_and_changes_nothing(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    broken = subscription_event("subscription_created", user_id=parent.user.id,
                                status="on_fire")
    await deliver(client, settings, broken)
    assert await process_pending(db) == ["dead"]  # it never reads better: no retry
    async with db.session() as session:
        event = await session.scalar(select(WebhookEvent))
    assert (event.status, event.attempts) == ("dead", 1)
    assert event.last_error == "unprocessable: ValueError: 'on_fire' is not a valid SubscriptionStatus"
    assert await count(db, Subscription) == 0 and await count(db, Wallet) == 0
    no_attributes = {"meta": {"event_name": "order_created"}, "data": {"type": "orders", "id": "1"}}
    assert (await deliver(client, settings, no_attributes)).status_code == 400
