"""Offline and through HTTP: subscribe in the sandbox -> credits -> book -> lesson
completed -> tutor earnings -> payout CSV -> paid; and the other lesson outcomes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from tests.billing.conftest import process_pending
from tests.factories import make_user, sign_in
from tests.scheduling.conftest import Market, approved_tutor
from tutorapp.auth.roles import Role
from tutorapp.billing import jobs as billing_jobs
from tutorapp.billing import ledger
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.webhooks.models import InboxEvent as WebhookEvent

EVERY_DAY = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(7)]
NOW = datetime(2026, 6, 1, 7, tzinfo=UTC)  # Monday 08:00 in London
LESSON = "2026-06-02T10:00:00+01:00"  # 09:00-10:00 UTC


def pin(app, when: datetime) -> None:
    app.state.clock = lambda: when


async def family(app, client: httpx.AsyncClient, db: Database):
    app.state.settings.booking_payment_required = True
    parent = await sign_in(client, await make_user(db, role=Role.parent, email="pat@example.com",
                                                   display_name="Pat Parent"))
    child = await make_user(db, role=Role.student, email="", parent=parent.user)
    return parent, child


async def subscribe_in_sandbox(client: httpx.AsyncClient, db: Database, parent) -> str:
    response = await client.post("/api/v1/billing/checkout", json={"plan": "monthly_4"},
                                 headers=parent.headers)
    assert response.status_code == 201, response.text
    checkout = response.json()
    assert checkout["provider"] == "sandbox"
    path = httpx.URL(checkout["url"]).path
    assert path.startswith("/billing/sandbox/checkout/")
    page = await client.get(path, headers={**parent.headers, "accept": "text/html"})
    assert page.status_code == 200
    assert "4 lessons a month" in page.text and "€100.00" in page.text
    paid = await client.post(f"{path}/pay", headers=parent.headers, follow_redirects=False)
    assert paid.status_code == 303
    async with db.session() as session:
        names = list(await session.scalars(
            select(WebhookEvent.event_name).order_by(WebhookEvent.created_at)))
    # The sandbox delivered Lemon Squeezy's three webhooks, signed, to our endpoint.
    assert names == ["order_created", "subscription_created", "subscription_payment_success"]
    assert await process_pending(db) == ["subscription order: booked from its invoice",
                                         "subscription active", "period paid: credits granted"]
    async with db.session() as session:
        from tutorapp.billing.models import Checkout

        assert (await session.get(Checkout, uuid.UUID(checkout["id"]))).paid_at is not None
    again = await client.post(f"{path}/pay", headers=parent.headers, follow_redirects=False)
    assert again.status_code == 303  # paying twice sends nothing more
    assert await process_pending(db) == []
    return checkout["id"]


async def book_and_pay(app, client, parent, child, tutor_id) -> str:
    pin(app, NOW)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": LESSON, "length": 60, "student_id": str(child.user.id)})
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "held"
    booking_id = booked.json()["id"]
    paid = await client.post(f"/api/v1/billing/bookings/{booking_id}/pay", headers=parent.headers)
    assert paid.status_code == 200, paid.text
    assert paid.json() == {"booking_id": booking_id, "status": "confirmed"}
    return booking_id


async def settle(db: Database, booking_id: str, when: datetime) -> str:
    """What the `billing.settle_booking` job does after scheduling's event."""
    async with db.unit_of_work() as session:
        return await billing_jobs.settle_or_pay(session, uuid.UUID(booking_id), now=when)


async def all_balances(db: Database) -> dict:
    async with db.session() as session:
        return {k: v for k, v in (await ledger.balances(session)).items() if v}


async def test_subscribe_book_complete_earn_and_pay_out(app, client: httpx.AsyncClient,
                                                         db: Database, market: Market,
                                                         tmp_path, database_url: str) -> None:
    parent, child = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    wallet = (await client.get("/api/v1/billing/wallet", headers=parent.headers)).json()
    assert wallet["credits_available"] == 4
    assert wallet["balance"] == {"amount_minor": 10_000, "currency": "EUR"}
    [subscription] = (await client.get("/api/v1/billing/subscriptions",
                                       headers=parent.headers)).json()
    assert (subscription["plan"], subscription["status"]) == ("monthly_4", "active")

    pin(app, NOW)
    tutor, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY,
                                           name="Ada Tutor")
    booking_id = await book_and_pay(app, client, parent, child, tutor_id)
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 3

    pin(app, datetime(2026, 6, 2, 10, 5, tzinfo=UTC))
    done = await client.post(f"/api/v1/bookings/{booking_id}/complete", headers=tutor.headers)
    assert done.status_code == 200, done.text
    assert await settle(db, booking_id, datetime(2026, 6, 2, 10, 5, tzinfo=UTC)) == "earned"
    assert await settle(db, booking_id, datetime(2026, 6, 2, 10, 6, tzinfo=UTC)) == "nothing to settle"

    earnings = (await client.get("/api/v1/billing/earnings", headers=tutor.headers)).json()
    [earning] = earnings["earnings"]
    # The credit is worth 10000 / 4 = 2500; 15% commission = 375; the tutor earns 2125.
    assert (earning["gross"]["amount_minor"], earning["commission"]["amount_minor"],
            earning["net"]["amount_minor"], earning["status"]) == (2_500, 375, 2_125, "pending")
    assert earning["payable_at"] == "2026-06-04T10:00:00Z"  # 48 hours after the lesson
    assert earnings["pending"] == [{"amount_minor": 2_125, "currency": "EUR"}]

    confirmed = await client.post(f"/api/v1/billing/bookings/{booking_id}/confirm",
                                  headers=parent.headers)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "payable"

    # The payout run, as the operator types it.
    out = tmp_path / "payout.csv"
    result = await asyncio.to_thread(
        CliRunner().invoke, __import__("tutorapp.cli", fromlist=["app"]).app,
        ["payouts", "run", "--period", "2026-06", "--out", str(out)],
        env={"TUTORAPP_DATABASE_URL": database_url, "TUTORAPP_PROFILE": "test",
             "TUTORAPP_SECRET_KEY": db.settings.secret_key})
    assert result.exit_code == 0, result.output
    assert "payout 2026-06: 1 line written" in result.output
    tutor_email = (await client.get("/api/v1/me", headers=tutor.headers)).json()["email"]
    assert out.read_text() == (
        "period,tutor_id,tutor_name,tutor_email,currency,lessons,amount_minor,amount\n"
        f"2026-06,{tutor.id},Ada Tutor,{tutor_email},EUR,1,2125,21.25\n"
    )
    csv = await client.get("/api/v1/admin/billing/payouts/2026-06/csv",
                           headers=market.admin.headers)
    assert csv.status_code == 200 and csv.text == out.read_text()

    paid = await client.post("/api/v1/admin/billing/payouts/2026-06/paid",
                             headers=market.admin.headers)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    again = await client.post("/api/v1/admin/billing/payouts/2026-06/paid",
                              headers=market.admin.headers)
    assert again.status_code == 409

    async with db.session() as session:
        from tutorapp.billing.models import Wallet

        wallet_id = await session.scalar(select(Wallet.id).where(Wallet.owner_id == parent.user.id))
    assert await all_balances(db) == {
        ("cash", "EUR"): 10_000 - 2_125,
        (ledger.wallet(wallet_id), "EUR"): -(10_000 - 2_500),
        ("commission", "EUR"): -375,
    }
    earnings = (await client.get("/api/v1/billing/earnings", headers=tutor.headers)).json()
    assert earnings["earnings"][0]["status"] == "paid"
    assert earnings["pending"] == [] and earnings["payable"] == []


async def test_a_tutor_cancellation_returns_the_credit(app, client: httpx.AsyncClient,
                                                       db: Database, market: Market) -> None:
    parent, child = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    pin(app, NOW)
    tutor, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booking_id = await book_and_pay(app, client, parent, child, tutor_id)
    cancelled = await client.post(f"/api/v1/bookings/{booking_id}/cancel", headers=tutor.headers,
                                  json={"reason": "ill"})
    assert cancelled.status_code == 200, cancelled.text
    assert await settle(db, booking_id, NOW) == "credit returned"
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 4
    assert (await client.get("/api/v1/billing/earnings",
                             headers=tutor.headers)).json()["earnings"] == []


async def test_a_disputed_lesson_waits_for_an_admin_who_refunds_the_credit(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    parent, child = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    pin(app, NOW)
    tutor, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booking_id = await book_and_pay(app, client, parent, child, tutor_id)
    after = datetime(2026, 6, 2, 10, 5, tzinfo=UTC)
    pin(app, after)
    assert (await client.post(f"/api/v1/bookings/{booking_id}/complete",
                              headers=tutor.headers)).status_code == 200
    assert await settle(db, booking_id, after) == "earned"
    disputed = await client.post(f"/api/v1/billing/bookings/{booking_id}/dispute",
                                 headers=parent.headers, json={"reason": "tutor never came"})
    assert disputed.status_code == 200 and disputed.json()["status"] == "disputed"
    # Past the 48 hours, a disputed earning is not released.
    async with db.unit_of_work() as session:
        from tutorapp.billing import earnings

        assert await earnings.release_due(session, now=after + timedelta(days=5)) == 0
    bad = await client.post(f"/api/v1/admin/billing/disputes/{booking_id}/resolve",
                            headers=market.admin.headers, json={"decision": "maybe", "note": "x"})
    assert bad.status_code == 422
    resolved = await client.post(f"/api/v1/admin/billing/disputes/{booking_id}/resolve",
                                 headers=market.admin.headers,
                                 json={"decision": "refund", "note": "no-show confirmed"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "reversed"
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 4
    async with db.session() as session:
        from tutorapp.billing.models import Wallet

        wallet_id = await session.scalar(select(Wallet.id).where(Wallet.owner_id == parent.user.id))
    assert await all_balances(db) == {("cash", "EUR"): 10_000,
                                      (ledger.wallet(wallet_id), "EUR"): -10_000}


async def test_an_undisputed_earning_becomes_payable_after_48_hours(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    from tutorapp.billing import earnings

    parent, child = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    pin(app, NOW)
    tutor, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booking_id = await book_and_pay(app, client, parent, child, tutor_id)
    pin(app, datetime(2026, 6, 2, 10, 5, tzinfo=UTC))
    await client.post(f"/api/v1/bookings/{booking_id}/no-show", headers=tutor.headers)
    assert await settle(db, booking_id, NOW) == "earned"
    end = datetime(2026, 6, 2, 10, tzinfo=UTC)
    async with db.unit_of_work() as session:
        assert await earnings.release_due(session, now=end + timedelta(hours=47, minutes=59)) == 0
    async with db.unit_of_work() as session:
        assert await earnings.release_due(session, now=end + timedelta(hours=48)) == 1
    late = await client.post(f"/api/v1/billing/bookings/{booking_id}/dispute",
                             headers=parent.headers, json={"reason": "too late now"})
    assert late.status_code == 409
    body = (await client.get("/api/v1/billing/earnings", headers=tutor.headers)).json()
    assert body["payable"] == [{"amount_minor": 2_125, "currency": "EUR"}]


async def test_without_credits_a_held_booking_is_paid_by_a_single_lesson_checkout(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    parent, child = await family(app, client, db)
    # The webhook is processed at the real time: book relative to it.
    now = utcnow().replace(second=0, microsecond=0)
    pin(app, now)
    lesson = (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat()
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": lesson, "length": 60, "student_id": str(child.user.id)})
    assert booked.status_code == 201, booked.text
    booking_id = booked.json()["id"]
    no_credit = await client.post(f"/api/v1/billing/bookings/{booking_id}/pay",
                                  headers=parent.headers)
    assert no_credit.status_code == 402
    assert no_credit.json()["type"] == "/problems/no-credits"
    assert await settle(db, booking_id, now) == "awaiting payment"
    checkout = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                 json={"plan": "single", "booking_id": booking_id})
    assert checkout.status_code == 201, checkout.text
    path = httpx.URL(checkout.json()["url"]).path
    await client.post(f"{path}/pay", headers=parent.headers)
    assert await process_pending(db) == ["order paid: credits granted; booking confirmed"]
    seen = await client.get(f"/api/v1/bookings/{booking_id}", headers=parent.headers)
    assert seen.json()["status"] == "confirmed"
    wallet = (await client.get("/api/v1/billing/wallet", headers=parent.headers)).json()
    assert wallet["credits_available"] == 0
    assert [(lot["plan"], lot["granted"], lot["remaining"]) for lot in wallet["lots"]] == [
        ("single", 1, 0)]


async def test_a_purchase_arriving_after_the_hold_ended_keeps_its_credit(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    from tutorapp.scheduling import bookings as scheduling

    parent, child = await family(app, client, db)
    # The checkout expires with the hold: pay it in time, by the real clock.
    now = utcnow().replace(second=0, microsecond=0)
    pin(app, now)
    lesson = (now + timedelta(days=7)).replace(hour=12, minute=0).isoformat()
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": lesson, "length": 60, "student_id": str(child.user.id)})
    booking_id = booked.json()["id"]
    checkout = await client.post("/api/v1/billing/checkout", headers=parent.headers,
                                 json={"plan": "single", "booking_id": booking_id})
    async with db.unit_of_work() as session:  # the hold ends before the payment lands
        assert await scheduling.release_expired_holds(session, now=now + timedelta(hours=1)) == 1
    await client.post(f"{httpx.URL(checkout.json()['url']).path}/pay", headers=parent.headers)
    assert await process_pending(db) == [
        "order paid: credits granted; booking no longer held: the credit stays in the wallet"]
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 1


async def test_cancel_resume_and_portal_through_the_api(app, client: httpx.AsyncClient,
                                                        db: Database) -> None:
    parent, _ = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    [subscription] = (await client.get("/api/v1/billing/subscriptions",
                                       headers=parent.headers)).json()
    sid = subscription["id"]
    again = await client.post("/api/v1/billing/checkout", json={"plan": "monthly_8"},
                              headers=parent.headers)
    assert again.status_code == 409  # one subscription per family
    cancelled = await client.post(f"/api/v1/billing/subscriptions/{sid}/cancel",
                                  headers=parent.headers)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["status"], body["cancelled"]) == ("cancelled", True)
    assert body["ends_at"] == body["renews_at"]
    # Grace: the credits stay usable until ends_at.
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 4
    # The sandbox's subscription_cancelled webhook arrives after; it changes nothing.
    assert await process_pending(db) == ["stale: an equal or newer state is applied"]
    twice = await client.post(f"/api/v1/billing/subscriptions/{sid}/cancel",
                              headers=parent.headers)
    assert twice.status_code == 409
    resumed = await client.post(f"/api/v1/billing/subscriptions/{sid}/resume",
                                headers=parent.headers)
    assert resumed.status_code == 200
    assert (resumed.json()["status"], resumed.json()["ends_at"]) == ("active", None)
    portal = await client.get(f"/api/v1/billing/subscriptions/{sid}/portal",
                              headers=parent.headers)
    assert portal.status_code == 200
    assert httpx.URL(portal.json()["url"]).path.startswith("/billing/sandbox/portal/")
    stranger = await sign_in(client, await make_user(db, role=Role.parent))
    hidden = await client.post(f"/api/v1/billing/subscriptions/{sid}/cancel",
                               headers=stranger.headers)
    assert hidden.status_code == 404


async def test_sandbox_portal_renewal_failure_and_recovery(app, client: httpx.AsyncClient,
                                                           db: Database) -> None:
    parent, _ = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    [subscription] = (await client.get("/api/v1/billing/subscriptions",
                                       headers=parent.headers)).json()
    portal = (await client.get(f"/api/v1/billing/subscriptions/{subscription['id']}/portal",
                               headers=parent.headers)).json()["url"]
    path = httpx.URL(portal).path
    page = await client.get(path, headers={**parent.headers, "accept": "text/html"})
    assert page.status_code == 200 and "Active" in page.text
    assert (await client.post(f"{path}/fail", headers=parent.headers,
                                     follow_redirects=False)).status_code == 303
    assert await process_pending(db) == ["payment failed", "subscription past_due"]
    assert (await client.post(f"{path}/recover", headers=parent.headers,
                                     follow_redirects=False)).status_code == 303
    assert await process_pending(db) == ["period paid: credits granted", "subscription active"]
    assert (await client.post(f"{path}/renew", headers=parent.headers,
                                     follow_redirects=False)).status_code == 303
    assert await process_pending(db) == ["period paid: credits granted", "subscription active"]
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 12
    assert (await client.post(f"{path}/explode", headers=parent.headers)).status_code == 404


async def test_the_settle_job_pays_a_held_booking_from_the_wallet_by_itself(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    parent, child = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    pin(app, NOW)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": LESSON, "length": 60, "student_id": str(child.user.id)})
    booking_id = booked.json()["id"]
    assert booked.json()["status"] == "held"
    # What `billing.settle_booking` does on scheduling's `booking.held` event.
    assert await settle(db, booking_id, NOW) == "booking confirmed"
    assert await settle(db, booking_id, NOW) == "open"
    seen = await client.get(f"/api/v1/bookings/{booking_id}", headers=parent.headers)
    assert seen.json()["status"] == "confirmed"
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 3


async def test_the_sweep_settles_what_a_lost_event_left_behind(
        app, client: httpx.AsyncClient, db: Database, market: Market, monkeypatch) -> None:
    """A tutor cancels, but the settling job never ran: the minute sweep returns the
    credit; it also releases due earnings and expires credits past their date."""
    from tutorapp.jobs.runtime import runtime

    parent, child = await family(app, client, db)
    await subscribe_in_sandbox(client, db, parent)
    pin(app, NOW)
    tutor, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booking_id = await book_and_pay(app, client, parent, child, tutor_id)
    await client.post(f"/api/v1/bookings/{booking_id}/cancel", headers=tutor.headers, json={})
    monkeypatch.setattr(runtime, "database", lambda: db)  # the job's database: the test's
    assert await billing_jobs._sweep() == {
        "bookings": 1, "earnings_released": 0, "credits_expired": 0}
    assert await billing_jobs._sweep() == {
        "bookings": 0, "earnings_released": 0, "credits_expired": 0}
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 4
