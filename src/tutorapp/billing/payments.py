"""Payments (paid orders and subscription invoices), refunds and receipts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.accounts.service import register_exporter, row_dict
from tutorapp.billing import credits, ledger, plans
from tutorapp.billing.models import CreditLot, Earning, LotSource, Payment, Subscription, Wallet
from tutorapp.config import BillingPlan, Settings
from tutorapp.core import money
from tutorapp.core.audit import record


def _int(value: Any) -> int:
    return int(value or 0)


async def record_payment(session: AsyncSession, settings: Settings, *, kind: str,
                         provider_id: str, attributes: dict[str, Any], wallet: Wallet,
                         payer: User, plan: BillingPlan, paid_at: datetime,
                         subscription_id: uuid.UUID | None = None) -> tuple[Payment, bool]:
    """Store a paid order/invoice once, book it and grant its credits.
    Returns (payment, created); a second delivery finds it and changes nothing."""
    query = select(Payment).where(Payment.kind == kind, Payment.provider_id == provider_id)
    payment = await session.scalar(query)
    if payment is not None:
        return payment, False
    total, tax = _int(attributes.get("total")), _int(attributes.get("tax"))
    currency = str(attributes.get("currency") or plan.currency).upper()
    urls = attributes.get("urls") or {}
    try:
        async with session.begin_nested():
            payment = Payment(
                kind=kind, provider_id=provider_id, wallet_id=wallet.id, user_id=payer.id,
                plan_key=plan.key, subscription_id=subscription_id, status="paid",
                total_minor=total, tax_minor=tax, refunded_minor=0, currency=currency,
                invoice_url=urls.get("invoice_url") or urls.get("receipt"), paid_at=paid_at,
            )
            session.add(payment)
            await session.flush()
    except IntegrityError:
        return await session.scalar(query), False  # type: ignore[return-value]
    net = total - tax
    await ledger.post(session, kind="payment", key=f"payment:{kind}:{provider_id}",
                      description=f"{plan.name} ({kind} {provider_id})",
                      postings=[(ledger.CASH, total, currency),
                                (ledger.wallet(wallet.id), -net, currency),
                                (ledger.TAX, -tax, currency)])
    source = {"subscription": LotSource.subscription, "package": LotSource.package,
              "single": LotSource.single}[plan.kind]
    await credits.grant(session, wallet, source=source, source_key=f"{kind}:{provider_id}",
                        credits=plan.lessons, value_minor=net, currency=currency,
                        expires_at=plans.lot_expiry(plan, paid_at), plan_key=plan.key,
                        subscription_id=subscription_id, payment_id=payment.id)
    await record(session, "billing.payment_received", subject_type="payment",
                 subject_id=payment.id, actor_id=payer.id, kind=kind, provider_id=provider_id,
                 total_minor=total, currency=currency, plan=plan.key)
    await send_receipt(session, settings, payment, payer, plan)
    return payment, True


async def send_receipt(session: AsyncSession, settings: Settings, payment: Payment, payer: User,
                       plan: BillingPlan) -> None:
    if not payer.email:
        return
    from tutorapp.notifications.service import enqueue_email

    await enqueue_email(
        session, to=payer.email, template="billing/receipt", user_id=payer.id, locale=payer.locale,
        context={
            "name": payer.display_name, "plan_name": plan.name,
            "amount": money.display(payment.total_minor, payment.currency),
            "tax": (money.display(payment.tax_minor, payment.currency)
                    if payment.tax_minor else None),
            "credits": plan.lessons,
            "paid_on": payment.paid_at.strftime("%Y-%m-%d"),
            "reference": f"{payment.kind.replace('_', ' ')} {payment.provider_id}",
            "invoice_url": payment.invoice_url,
        },
    )


async def apply_refund(session: AsyncSession, payment: Payment, *, refunded_total: int,
                       reason: str) -> int:
    """Bring the payment's refunded amount up to `refunded_total` (cumulative, as the
    provider reports it): a reversing ledger entry for the difference and the
    matching share of unused credits revoked. Returns the amount newly refunded."""
    await credits.lock_wallet(session, payment.wallet_id)
    await session.refresh(payment, with_for_update=True)
    refunded_total = min(refunded_total, payment.total_minor)
    delta = refunded_total - payment.refunded_minor
    if delta <= 0:
        return 0
    tax_part = delta * payment.tax_minor // payment.total_minor if payment.total_minor else 0
    original = await ledger.by_key(session, f"payment:{payment.kind}:{payment.provider_id}")
    await ledger.post(
        session, kind="refund", key=f"refund:{payment.kind}:{payment.provider_id}:{refunded_total}",
        description=f"refund of {payment.kind} {payment.provider_id} ({reason})", reverses=original,
        postings=[(ledger.CASH, -delta, payment.currency),
                  (ledger.wallet(payment.wallet_id), delta - tax_part, payment.currency),
                  (ledger.TAX, tax_part, payment.currency)],
    )
    payment.refunded_minor = refunded_total
    payment.status = "refunded" if refunded_total >= payment.total_minor else "partial_refund"
    lot = await session.scalar(select(CreditLot).where(CreditLot.payment_id == payment.id))
    revoked = 0
    if lot is not None:
        # the refunded share of the credits, rounded up (integer arithmetic)
        share = (-(-delta * lot.granted // payment.total_minor) if payment.total_minor
                 else lot.granted)
        revoked = await credits.revoke(session, lot, share, reason="refund")
    await session.flush()
    await record(session, "billing.refunded", subject_type="payment", subject_id=payment.id,
                 amount_minor=delta, refunded_total_minor=refunded_total,
                 currency=payment.currency, credits_revoked=revoked, reason=reason)
    return delta


async def list_for_wallet(session: AsyncSession, wallet_id: uuid.UUID, *, limit: int = 100
                          ) -> list[Payment]:
    return list(await session.scalars(
        select(Payment).where(Payment.wallet_id == wallet_id)
        .order_by(Payment.paid_at.desc(), Payment.id).limit(limit)
    ))


@register_exporter("billing")
async def export_billing(db: AsyncSession, user: User) -> dict[str, Any]:
    """Wallet, credits, subscriptions, payments and earnings, for the privacy export."""
    wallet = await db.scalar(select(Wallet).where(Wallet.owner_id == user.id))
    lots = [] if wallet is None else list(
        await db.scalars(select(CreditLot).where(CreditLot.wallet_id == wallet.id))
    )
    subscriptions = await db.scalars(select(Subscription).where(Subscription.user_id == user.id))
    payments = await db.scalars(select(Payment).where(Payment.user_id == user.id))
    earnings = await db.scalars(select(Earning).where(Earning.tutor_user_id == user.id))
    return {
        "wallet": row_dict(wallet) if wallet else None,
        "credit_lots": [row_dict(lot) for lot in lots],
        "subscriptions": [row_dict(s) for s in subscriptions],
        "payments": [row_dict(p) for p in payments],
        "earnings": [row_dict(e) for e in earnings],
    }
