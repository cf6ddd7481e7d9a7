"""Request and response models of the billing API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tutorapp.core.fields import Text


class Money(BaseModel):
    amount_minor: int
    currency: str


class PlanOut(BaseModel):
    key: str
    kind: Literal["subscription", "package", "single"]
    name: str
    lessons: int
    price: Money
    interval_months: int | None
    expires_after_months: int | None
    rollover: bool


class CheckoutIn(BaseModel):
    plan: Annotated[str, Text(40, min_length=1)]
    booking_id: uuid.UUID | None = Field(
        default=None, description="a held booking this purchase pays for"
    )


class CheckoutOut(BaseModel):
    id: uuid.UUID
    url: str
    provider: str


class LotOut(BaseModel):
    id: uuid.UUID
    source: str
    plan: str | None
    granted: int
    remaining: int
    expires_at: datetime | None


class WalletOut(BaseModel):
    id: uuid.UUID | None
    credits_available: int
    balance: Money | None
    lots: list[LotOut]


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    plan: str
    status: str
    cancelled: bool
    renews_at: datetime | None
    ends_at: datetime | None
    trial_ends_at: datetime | None
    user_id: uuid.UUID


class PortalOut(BaseModel):
    url: str


class InvoiceOut(BaseModel):
    id: uuid.UUID
    kind: str
    plan: str
    status: str
    total: Money
    tax: Money
    refunded: Money
    invoice_url: str | None
    paid_at: datetime


class DisputeIn(BaseModel):
    reason: Annotated[str, Text(1000, min_length=3, multiline=True)]


class EarningOut(BaseModel):
    booking_id: uuid.UUID
    status: str
    gross: Money
    commission: Money
    net: Money
    payable_at: datetime
    payout_id: uuid.UUID | None


class EarningsOut(BaseModel):
    pending: list[Money]
    payable: list[Money]
    earnings: list[EarningOut]


class BookingPaidOut(BaseModel):
    booking_id: uuid.UUID
    status: str


class ResolveIn(BaseModel):
    decision: Literal["refund", "release"]
    note: Annotated[str, Text(1000, min_length=3, multiline=True)]


class CreditAdjustmentIn(BaseModel):
    delta: int = Field(ge=-1000, le=1000, description="credits to add (positive) or remove")
    reason: Annotated[str, Text(500, min_length=3, multiline=True)]


class LedgerLineOut(BaseModel):
    transaction_id: uuid.UUID
    kind: str
    description: str
    account: str
    amount: Money
    at: datetime


class LedgerOut(BaseModel):
    user_id: uuid.UUID
    accounts: dict[str, Money]
    lines: list[LedgerLineOut]


class PayoutLineOut(BaseModel):
    tutor_id: uuid.UUID
    tutor_name: str
    tutor_email: str
    lessons: int
    amount: Money


class PayoutOut(BaseModel):
    id: uuid.UUID
    period: str
    status: str
    paid_at: datetime | None
    lines: list[PayoutLineOut]
