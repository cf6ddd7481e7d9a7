"""One money model (docs/billing.md, "The money model"): a lesson costs one credit
with any tutor; credits are bought, and tutors earn and are paid, in the one billing
currency; amounts are shown with that currency's own decimals (Babel).

Run in yen, whose minor unit is the yen itself: an amount formatted as if it had
cents shows a hundredfold error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.accounts.test_browser_sessions import HTML
from tests.billing.conftest import deliver, order_event, process_pending
from tests.billing.test_flow import EVERY_DAY, LESSON, NOW, pin, settle
from tests.conftest import make_settings
from tests.factories import make_user, sign_in
from tests.scheduling.conftest import Market, approved_tutor
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core import money
from tutorapp.core.db import Database

YEN_PLANS = [
    {"key": "pack_10", "kind": "package", "name": "10 lessons", "lessons": 10,
     "price_minor": 30_000, "currency": "JPY", "variant_id": "2003", "expires_after_months": 6},
    {"key": "single", "kind": "single", "name": "One lesson", "lessons": 1,
     "price_minor": 3_500, "currency": "JPY", "variant_id": "2004", "expires_after_months": 6},
]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, billing_currency="JPY", billing_plans=YEN_PLANS,
                         booking_payment_required=True)


def test_amounts_use_each_currencys_minor_unit() -> None:
    assert [money.display(*a) for a in [(2_600, "EUR"), (1_500, "JPY"), (1_234, "KWD"),
                                        (-2_040, "GBP"), (0, "USD")]] == [
        "€26.00", "¥1,500", "KWD1.234", "-£20.40", "$0.00"]
    assert [money.plain(*a) for a in [(2_125, "EUR"), (2_550, "JPY"), (1_234, "KWD"),
                                      (-5, "EUR")]] == ["21.25", "2550", "1.234", "-0.05"]
    assert money.exponent("JPY") == 0 and money.exponent("KWD") == 3


def test_plans_must_be_priced_in_the_billing_currency(database_url: str) -> None:
    with pytest.raises(ValidationError, match="single not priced in TUTORAPP_BILLING_CURRENCY"):
        make_settings(database_url, billing_currency="JPY",
                      billing_plans=[YEN_PLANS[0], YEN_PLANS[1] | {"currency": "EUR"}])
    with pytest.raises(ValidationError, match="XYZ is not an ISO 4217 currency"):
        make_settings(database_url, billing_currency="XYZ", billing_plans=[])


async def test_a_lesson_costs_one_credit_and_earns_its_value_in_the_billing_currency(
        app, client: httpx.AsyncClient, db: Database, market: Market, tmp_path,
        database_url: str) -> None:
    parent = await sign_in(client, await make_user(db, role=Role.parent,
                                                   email="pat@example.com"))
    child = await make_user(db, role=Role.student, email="", parent=parent.user)
    order = order_event("order_created", user_id=parent.user.id, variant_id=2003,
                        total=30_000)
    order["data"]["attributes"]["currency"] = "JPY"
    assert (await deliver(client, db.settings, order)).status_code == 200
    assert await process_pending(db) == ["order paid: credits granted"]
    wallet = (await client.get("/api/v1/billing/wallet", headers=parent.headers)).json()
    assert wallet["credits_available"] == 10
    assert wallet["balance"] == {"amount_minor": 30_000, "currency": "JPY"}

    # Two tutors who used to charge different rates in different currencies: one credit
    # each, for a 30-minute lesson as for an hour.
    pin(app, NOW)
    ada, ada_id = await approved_tutor(app, client, market, rules=EVERY_DAY, name="Ada Tutor")
    booked = await client.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": ada_id, "start": LESSON, "length": 30, "student_id": str(child.user.id)})
    assert booked.status_code == 201, booked.text
    assert (booked.json()["status"], booked.json()["credits"]) == ("held", 1)
    booking_id = booked.json()["id"]
    paid = await client.post(f"/api/v1/billing/bookings/{booking_id}/pay",
                             headers=parent.headers)
    assert paid.json()["status"] == "confirmed"
    assert (await client.get("/api/v1/billing/wallet",
                             headers=parent.headers)).json()["credits_available"] == 9

    pin(app, datetime(2026, 6, 2, 10, 5, tzinfo=UTC))
    assert (await client.post(f"/api/v1/bookings/{booking_id}/complete",
                              headers=ada.headers)).status_code == 200
    assert await settle(db, booking_id, datetime(2026, 6, 2, 10, 5, tzinfo=UTC)) == "earned"
    [earning] = (await client.get("/api/v1/billing/earnings",
                                  headers=ada.headers)).json()["earnings"]
    # The credit is worth 30000 / 10 = 3000 yen; 15% commission = 450; Ada earns 2550.
    assert (earning["gross"], earning["commission"], earning["net"]) == (
        {"amount_minor": 3_000, "currency": "JPY"}, {"amount_minor": 450, "currency": "JPY"},
        {"amount_minor": 2_550, "currency": "JPY"})

    # Every page says the same: one credit to book, the credit's value earned, in yen.
    home = await client.get("/app", headers={**ada.headers, **HTML})
    assert "¥2,550" in home.text and "JPY 25.50" not in home.text
    lesson = await client.get(f"/app/bookings/{booking_id}", headers={**parent.headers, **HTML})
    assert "1 lesson credit" in lesson.text
    profile = await client.get(f"/tutors/{ada_id}", headers=HTML)
    assert "1 lesson credit" in profile.text and "/ hour" not in profile.text
    landing = await client.get("/", headers=HTML)
    assert "¥30,000" in landing.text and "¥3,500" in landing.text

    # The payout CSV's plain amount has no invented decimals.
    confirmed = await client.post(f"/api/v1/billing/bookings/{booking_id}/confirm",
                                  headers=parent.headers)
    assert confirmed.json()["status"] == "payable"
    out = tmp_path / "payout.csv"
    result = await asyncio.to_thread(
        CliRunner().invoke, __import__("tutorapp.cli", fromlist=["app"]).app,
        ["payouts", "run", "--period", "2026-06", "--out", str(out)],
        env={"TUTORAPP_DATABASE_URL": database_url, "TUTORAPP_PROFILE": "test",
             "TUTORAPP_SECRET_KEY": db.settings.secret_key})
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].endswith(",JPY,1,2550,2550")


async def test_a_credit_an_admin_gave_earns_the_list_price_of_a_credit(
        app, client: httpx.AsyncClient, db: Database, market: Market) -> None:
    student = await sign_in(client, await make_user(db, role=Role.student))
    given = await client.post(f"/api/v1/admin/billing/users/{student.user.id}/credits",
                              headers=market.admin.headers,
                              json={"delta": 1, "reason": "apology for a cancelled lesson"})
    assert given.status_code == 200, given.text
    assert given.json()["credits_available"] == 1
    pin(app, NOW)
    ada, ada_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    booked = await client.post("/api/v1/bookings", headers=student.headers, json={
        "tutor_id": ada_id, "start": LESSON, "length": 60})
    booking_id = booked.json()["id"]
    assert (await client.post(f"/api/v1/billing/bookings/{booking_id}/pay",
                              headers=student.headers)).status_code == 200
    pin(app, datetime(2026, 6, 2, 10, 5, tzinfo=UTC))
    await client.post(f"/api/v1/bookings/{booking_id}/complete", headers=ada.headers)
    assert await settle(db, booking_id, datetime(2026, 6, 2, 10, 5, tzinfo=UTC)) == "earned"
    [earning] = (await client.get("/api/v1/billing/earnings",
                                  headers=ada.headers)).json()["earnings"]
    # The dearest credit of the catalogue is the single lesson: 3500 yen.
    assert earning["gross"] == {"amount_minor": 3_500, "currency": "JPY"}
    assert earning["net"] == {"amount_minor": 2_975, "currency": "JPY"}
