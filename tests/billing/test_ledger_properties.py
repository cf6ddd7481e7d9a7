"""Ledger rules, and a property: whatever Lemon Squeezy sends, in whatever order and
however often, every transaction balances and no period or purchase is granted twice."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.billing.conftest import (
    T0,
    invoice_event,
    order_event,
    process_pending,
    subscription_event,
)
from tests.factories import make_user
from tutorapp.auth.roles import Role
from tutorapp.billing import credits, ledger, webhooks
from tutorapp.billing.models import CreditLot, LedgerPosting, Payment, Wallet
from tutorapp.core.db import Database
from tutorapp.webhooks import service as inbox


def test_commission_rounds_half_up_and_tutor_gets_the_rest() -> None:
    assert ledger.commission_of(2_500, 1_500) == 375  # exactly 375.00
    assert ledger.commission_of(2_501, 1_500) == 375  # 375.15 -> down
    assert ledger.commission_of(2_503, 1_500) == 375  # 375.45 -> down
    assert ledger.commission_of(2_510, 1_500) == 377  # 376.50 -> half up
    assert ledger.commission_of(2_511, 1_500) == 377  # 376.65 -> up
    assert ledger.commission_of(1, 1_500) == 0
    assert ledger.commission_of(0, 1_500) == 0
    assert ledger.commission_of(9_999, 10_000) == 9_999
    with pytest.raises(ValueError, match="gross must not be negative"):
        ledger.commission_of(-1, 1_500)


def test_a_lot_is_split_into_credits_that_add_up_exactly() -> None:
    lot = CreditLot(value_minor=10_000, granted=3)
    assert [credits.credit_value(lot, k) for k in range(3)] == [3_333, 3_333, 3_334]
    lot = CreditLot(value_minor=20_000, granted=10)
    assert {credits.credit_value(lot, k) for k in range(10)} == {2_000}


async def test_an_unbalanced_transaction_is_refused(db: Database) -> None:
    async with db.unit_of_work() as session:
        with pytest.raises(ledger.Unbalanced):
            await ledger.post(session, kind="x", key="x", description="x",
                              postings=[("cash", 100, "EUR"), ("commission", -99, "EUR")])
        with pytest.raises(ledger.Unbalanced):  # balanced in sum, not per currency
            await ledger.post(session, kind="x", key="y", description="x",
                              postings=[("cash", 100, "EUR"), ("commission", -100, "GBP")])
        first = await ledger.post(session, kind="x", key="z", description="x",
                                  postings=[("cash", 100, "EUR"), ("commission", -100, "EUR")])
        again = await ledger.post(session, kind="x", key="z", description="x",
                                  postings=[("cash", 100, "EUR"), ("commission", -100, "EUR")])
        assert first is not None and again is None
        assert await ledger.trial_balance(session) == {"EUR": 0}


_example = itertools.count(1)
SUBSCRIPTION_STATES = ["active", "past_due", "active", "cancelled", "active", "paused",
                       "unpaid", "expired"]


def event_strategy() -> st.SearchStrategy:
    """(kind, index, variant) tuples turned into payloads per example."""
    return st.lists(
        st.one_of(
            st.tuples(st.just("sub"), st.integers(0, len(SUBSCRIPTION_STATES) - 1)),
            st.tuples(st.just("invoice"), st.integers(0, 2),
                      st.sampled_from(["success", "recovered", "failed", "refunded_part",
                                       "refunded_all"])),
            st.tuples(st.just("order"), st.integers(0, 1),
                      st.sampled_from(["created", "refunded_part", "refunded_all"])),
        ),
        min_size=1, max_size=14,
    )


def payloads_for(steps: list[tuple], user_id: uuid.UUID, n: int) -> list[dict]:
    sub_id = str(100_000 + n)
    out = []
    for step in steps:
        if step[0] == "sub":
            i = step[1]
            status = SUBSCRIPTION_STATES[i]
            name = {"expired": "subscription_expired", "cancelled": "subscription_cancelled",
                    "paused": "subscription_paused"}.get(status, "subscription_updated")
            if i == 0:
                name = "subscription_created"
            out.append(subscription_event(name, sub_id=sub_id, user_id=user_id, status=status,
                                          updated_at=T0 + timedelta(hours=i),
                                          cancelled=status == "cancelled"))
        elif step[0] == "invoice":
            _, i, what = step
            invoice_id = str(n * 10 + i)
            common = {"invoice_id": invoice_id, "sub_id": sub_id, "user_id": user_id,
                      "created_at": T0 + timedelta(days=30 * i)}
            if what in ("success", "recovered"):
                out.append(invoice_event(f"subscription_payment_{what}", **common))
            elif what == "failed":
                out.append(invoice_event("subscription_payment_failed", status="pending", **common))
            else:
                amount = 10_000 if what == "refunded_all" else 3_000
                out.append(invoice_event(
                    "subscription_payment_refunded", refunded_amount=amount,
                    status="refunded" if amount == 10_000 else "partial_refund",
                    updated_at=T0 + timedelta(days=30 * i, hours=amount), **common))
        else:
            _, i, what = step
            variant, total = (1003, 24_000) if i == 0 else (1004, 2_600)
            common = {"order_id": str(n * 10 + i), "user_id": user_id, "variant_id": variant,
                      "total": total}
            if what == "created":
                out.append(order_event("order_created", **common))
            else:
                amount = total if what == "refunded_all" else total // 3
                out.append(order_event("order_refunded", refunded_amount=amount,
                                       status="refunded" if amount == total else "partial_refund",
                                       updated_at=T0 + timedelta(hours=amount), **common))
    return out


@hypothesis_settings(max_examples=50, derandomize=True, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(steps=event_strategy())
async def test_any_sequence_of_events_keeps_the_ledger_balanced_and_grants_once(
        db: Database, steps: list[tuple]) -> None:
    n = next(_example)
    parent = await make_user(db, role=Role.parent)
    payloads = payloads_for(steps, parent.user.id, n)
    for payload in payloads:
        async with db.unit_of_work() as session:
            event_id, created = await webhooks.store(session, payload, orjson.dumps(payload))
        if created:
            async with db.unit_of_work() as session:
                await inbox.process(session, db.settings, event_id)
    await process_pending(db)

    has_subscription = any(s[0] == "sub" for s in steps)
    paid_invoices = {s[1] for s in steps if s[0] == "invoice" and s[2] != "failed"}
    orders = {s[1] for s in steps if s[0] == "order"}
    expected_lots = (len(paid_invoices) if has_subscription else 0) + len(orders)
    async with db.session() as session:
        wallet = await session.scalar(select(Wallet).where(Wallet.owner_id == parent.user.id))
        lots = [] if wallet is None else list(await session.scalars(
            select(CreditLot).where(CreditLot.wallet_id == wallet.id)))
        # never granted twice: one lot per paid period or purchase, each as sold
        assert len(lots) == expected_lots
        for lot in lots:
            assert lot.granted == {"monthly_4": 4, "pack_10": 10, "single": 1}[lot.plan_key]
            assert 0 <= lot.remaining <= lot.granted
        # every transaction balances, hence the whole ledger does
        unbalanced = (await session.execute(
            select(LedgerPosting.transaction_id, LedgerPosting.currency)
            .group_by(LedgerPosting.transaction_id, LedgerPosting.currency)
            .having(func.sum(LedgerPosting.amount_minor) != 0)
        )).all()
        assert unbalanced == []
        assert set((await ledger.trial_balance(session)).values()) <= {0}
        if wallet is not None:
            payments = list(await session.scalars(
                select(Payment).where(Payment.wallet_id == wallet.id)))
            assert all(0 <= p.refunded_minor <= p.total_minor for p in payments)
            # what the family holds = paid - refunded - expired (no lesson was taken)
            paid = sum(p.total_minor - p.refunded_minor for p in payments)
            from tutorapp.billing.models import LedgerTransaction

            expired = await session.scalar(
                select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0))
                .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
                .where(LedgerTransaction.kind == "breakage",
                       LedgerPosting.account == ledger.wallet(wallet.id)))
            held = -(await ledger.balance(session, ledger.wallet(wallet.id), "EUR"))
            assert held == paid - int(expired)
