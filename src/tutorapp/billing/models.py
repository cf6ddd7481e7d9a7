"""Billing: wallets and lesson credits, subscriptions and payments mirrored from the
payment provider, the double-entry ledger, tutor earnings and
payouts. Every amount is an integer of minor units next to its ISO 4217 currency."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Entity, enum_column


class SubscriptionStatus(enum.StrEnum):
    on_trial = "on_trial"
    active = "active"
    paused = "paused"
    past_due = "past_due"
    unpaid = "unpaid"
    cancelled = "cancelled"
    expired = "expired"


class LotSource(enum.StrEnum):
    subscription = "subscription"
    package = "package"
    single = "single"
    adjustment = "adjustment"


class SpendStatus(enum.StrEnum):
    reserved = "reserved"  # taken by an open booking
    consumed = "consumed"  # the lesson happened (or was forfeited): the tutor earns it
    returned = "returned"  # given back to its lot (a refunded cancellation)


class EarningStatus(enum.StrEnum):
    pending = "pending"  # waiting for the student's confirmation or the hold time
    disputed = "disputed"  # held for an admin decision
    payable = "payable"
    paid = "paid"
    reversed = "reversed"  # the admin refunded the credit


class PayoutStatus(enum.StrEnum):
    draft = "draft"
    paid = "paid"


class Wallet(Entity):
    """A family wallet: owned by a parent (their children's bookings draw on it) or
    by a student without a parent."""

    __tablename__ = "billing_wallets"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    currency: Mapped[str] = mapped_column(String(3))


class Subscription(Entity):
    """Our mirror of a provider subscription, moved only forward in `provider_updated_at`."""

    __tablename__ = "billing_subscriptions"

    provider_id: Mapped[str] = mapped_column(String(64), unique=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_wallets.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    plan_key: Mapped[str] = mapped_column(String(40))
    variant_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[SubscriptionStatus] = mapped_column(enum_column(SubscriptionStatus, 24))
    cancelled: Mapped[bool] = mapped_column(default=False)
    customer_id: Mapped[str | None] = mapped_column(String(64))
    renews_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    trial_ends_at: Mapped[datetime | None]
    provider_updated_at: Mapped[datetime]
    customer_portal_url: Mapped[str | None] = mapped_column(String(1000))
    update_payment_method_url: Mapped[str | None] = mapped_column(String(1000))


class CreditLot(Entity):
    """Credits granted at once (one paid period, one purchase, one adjustment).

    `source_key` is unique: a period or purchase is granted once, however often its
    webhook arrives. The k-th consumed credit (0-based) of a lot worth V for N credits
    is worth V*(k+1)//N - V*k//N, so the credits of a lot add up to exactly V."""

    __tablename__ = "billing_credit_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= granted", name="remaining"),
        CheckConstraint("consumed >= 0 AND consumed <= granted", name="consumed"),
        Index("ix_billing_credit_lots_wallet_expires", "wallet_id", "expires_at"),
    )

    wallet_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_wallets.id", ondelete="CASCADE")
    )
    source: Mapped[LotSource] = mapped_column(enum_column(LotSource, 24))
    source_key: Mapped[str] = mapped_column(String(200), unique=True)
    plan_key: Mapped[str | None] = mapped_column(String(40))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("billing_subscriptions.id", ondelete="SET NULL"), index=True
    )
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("billing_payments.id", ondelete="SET NULL"), index=True
    )
    granted: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    consumed: Mapped[int] = mapped_column(Integer, default=0)
    value_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    expires_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]


class CreditSpend(Entity):
    """The credit a booking took: one per booking (unique), so it is never taken twice."""

    __tablename__ = "billing_credit_spends"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), unique=True
    )
    wallet_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_wallets.id", ondelete="CASCADE"), index=True
    )
    lot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_credit_lots.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[SpendStatus] = mapped_column(enum_column(SpendStatus, 24))


class Payment(Entity):
    """A paid order or subscription invoice: the account's list of invoices."""

    __tablename__ = "billing_payments"
    __table_args__ = (UniqueConstraint("kind", "provider_id"),)

    kind: Mapped[str] = mapped_column(String(24))  # "order" | "subscription_invoice"
    provider_id: Mapped[str] = mapped_column(String(64))
    wallet_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_wallets.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    plan_key: Mapped[str] = mapped_column(String(40))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("billing_subscriptions.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(24))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    invoice_url: Mapped[str | None] = mapped_column(String(1000))
    paid_at: Mapped[datetime]


class Checkout(Entity):
    """A checkout we asked the provider for: who, which plan, for which held booking."""

    __tablename__ = "billing_checkouts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    plan_key: Mapped[str] = mapped_column(String(40))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="SET NULL")
    )
    provider: Mapped[str] = mapped_column(String(24))
    provider_checkout_id: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(1000))
    # the custom data sent with it: what the reconciliation puts back on events
    custom: Mapped[dict[str, Any] | None]
    paid_at: Mapped[datetime | None]


class LedgerTransaction(Entity):
    """One balanced movement of money; append-only, never updated nor deleted.
    `key` is unique: the same business fact is booked once."""

    __tablename__ = "billing_ledger_transactions"

    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(300))
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("billing_ledger_transactions.id")
    )


class LedgerPosting(Entity):
    """One leg of a transaction: debit positive, credit negative; the legs of a
    transaction add up to zero in each currency."""

    __tablename__ = "billing_ledger_postings"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="nonzero"),
        Index("ix_billing_ledger_postings_account", "account", "currency"),
    )

    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_ledger_transactions.id"), index=True
    )
    account: Mapped[str] = mapped_column(String(100))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class Earning(Entity):
    """What a tutor earns for one lesson, and where it is on its way to a payout."""

    __tablename__ = "billing_earnings"
    __table_args__ = (Index("ix_billing_earnings_status_payable_at", "status", "payable_at"),)

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), unique=True
    )
    tutor_user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    spend_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_credit_spends.id", ondelete="CASCADE")
    )
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    commission_minor: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[EarningStatus] = mapped_column(enum_column(EarningStatus, 24))
    payable_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    disputed_at: Mapped[datetime | None]
    dispute_reason: Mapped[str | None] = mapped_column(String(1000))
    resolved_at: Mapped[datetime | None]
    payout_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("billing_payouts.id", ondelete="SET NULL"), index=True
    )


class Payout(Entity):
    """A payout run for one period (`2026-11`): paid by bank transfer outside the provider."""

    __tablename__ = "billing_payouts"

    period: Mapped[str] = mapped_column(String(7), unique=True)
    status: Mapped[PayoutStatus] = mapped_column(enum_column(PayoutStatus, 24))
    paid_at: Mapped[datetime | None]
