"""Lemon Squeezy's events, applied from the webhook inbox (`tutorapp.webhooks`).

`store` puts a verified delivery in the inbox under a dedupe key (event name,
resource type and id, the resource's `updated_at`): a repeated delivery conflicts
and is not stored again. `apply` (the inbox's handler for `lemonsqueezy`) applies
it; it is safe to run twice. An invoice whose subscription we have not seen yet
is deferred (retried with backoff); a payload we cannot read is dead-lettered.
Whenever credits arrive, the held bookings the purchase was started from
(`custom_data.booking_ids`) are paid in order in the same transaction.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import credits, payments, plans, subscriptions
from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.errors import AppError
from tutorapp.core.time import utcnow
from tutorapp.webhooks import service as inbox
from tutorapp.webhooks.models import InboxEvent

log = logging.getLogger("tutorapp.billing.webhooks")
PROVIDER = "lemonsqueezy"
DEFER = "deferred"
SUBSCRIPTION_EVENTS = frozenset({
    "subscription_created", "subscription_updated", "subscription_cancelled",
    "subscription_resumed", "subscription_expired", "subscription_paused",
    "subscription_unpaused",
})
INVOICE_EVENTS = frozenset({
    "subscription_payment_success", "subscription_payment_failed",
    "subscription_payment_recovered", "subscription_payment_refunded",
})
ORDER_EVENTS = frozenset({"order_created", "order_refunded"})


class MalformedWebhook(AppError):
    status, type, title = 400, "/problems/malformed-webhook", "Malformed webhook"


def dedupe_key(payload: dict[str, Any], body: bytes) -> str:
    meta, data = payload["meta"], payload["data"]
    version = (data.get("attributes") or {}).get("updated_at") or hashlib.sha256(body).hexdigest()
    return f"{meta['event_name']}:{data['type']}:{data['id']}:{version}"[:300]


def validate(payload: Any) -> dict[str, Any]:
    """The parts of Lemon Squeezy's envelope we rely on, or a 400."""
    try:
        meta, data = payload["meta"], payload["data"]
        if not isinstance(meta["event_name"], str) or not isinstance(data["type"], str):
            raise TypeError
        str(data["id"])
        if not isinstance(data["attributes"], dict):
            raise TypeError
    except (KeyError, TypeError) as exc:
        raise MalformedWebhook("Expected {meta: {event_name}, data: {type, id, attributes}}.") from exc
    return payload


async def store(session: AsyncSession, payload: dict[str, Any], body: bytes
                ) -> tuple[uuid.UUID, bool]:
    """Put a verified delivery in the inbox: (its id, whether it is new)."""
    return await inbox.store(
        session, provider=PROVIDER, dedupe_key=dedupe_key(payload, body),
        event_name=payload["meta"]["event_name"], resource_type=payload["data"]["type"],
        resource_id=str(payload["data"]["id"]), payload=payload,
    )


def custom_data(meta: dict[str, Any]) -> dict[str, Any]:
    """`meta.custom_data`: what our checkout put there (an object), or nothing."""
    custom = meta.get("custom_data")
    if custom is None:
        return {}
    if not isinstance(custom, dict):
        raise inbox.Unprocessable("meta.custom_data is not an object")
    return custom


def held_booking_ids(meta: dict[str, Any]) -> list[str]:
    """The held bookings the purchase was started from, in the order to pay them."""
    custom = custom_data(meta)
    listed = custom.get("booking_ids") or custom.get("booking_id") or ""
    return [part for part in str(listed).split(",") if part.strip()]


async def _payer(session: AsyncSession, meta: dict[str, Any]) -> User | None:
    custom = custom_data(meta)
    try:
        user_id = uuid.UUID(str(custom.get("user_id")))
    except ValueError:
        return None
    user = await session.get(User, user_id)
    return user if user is not None and user.deleted_at is None else None


async def _subscription_event(session: AsyncSession, settings: Settings,
                              payload: dict[str, Any]) -> str:
    data = payload["data"]
    return await subscriptions.sync(
        session, settings, provider_id=str(data["id"]), attributes=data["attributes"],
        payer=await _payer(session, payload["meta"]), event_name=payload["meta"]["event_name"],
    )


async def _invoice_event(session: AsyncSession, settings: Settings,
                         payload: dict[str, Any]) -> str:
    name, data = payload["meta"]["event_name"], payload["data"]
    attributes = data["attributes"]
    subscription = await subscriptions.by_provider_id(session, str(attributes.get("subscription_id")))
    if subscription is None:
        return DEFER  # its subscription_created has not been processed yet
    if name == "subscription_payment_failed":
        await record(session, "billing.payment_failed", subject_type="subscription",
                     subject_id=subscription.id, invoice_id=str(data["id"]))
        return "payment failed"
    plan = plans.by_key(settings, subscription.plan_key)
    if name in ("subscription_payment_success", "subscription_payment_recovered") and \
            attributes.get("status") not in ("paid", "refunded", "partial_refund"):
        return f"ignored: invoice {attributes.get('status')}"
    from tutorapp.billing.models import Wallet

    payer = await session.get_one(User, subscription.user_id)
    wallet = await session.get_one(Wallet, subscription.wallet_id)
    payment, created = await payments.record_payment(
        session, settings, kind="subscription_invoice", provider_id=str(data["id"]),
        attributes=attributes, wallet=wallet, payer=payer, plan=plan,
        paid_at=subscriptions.parse_time(attributes.get("created_at")) or utcnow(),
        subscription_id=subscription.id,
    )
    outcome = "period paid: credits granted" if created else "payment known"
    refunded = int(attributes.get("refunded_amount") or 0)
    if refunded or name == "subscription_payment_refunded":
        amount = await payments.apply_refund(session, payment, refunded_total=refunded,
                                             reason=name)
        return f"refunded {amount}"
    return outcome + await _pay_held(session, wallet, payload["meta"], created, payer)


async def _pay_held(session: AsyncSession, wallet: Any, meta: dict[str, Any], created: bool,
                    payer: User) -> str:
    """Credits just arrived: pay the held bookings the purchase was started from, in
    order, in this same transaction (only when the credits are new: exactly once)."""
    ids = held_booking_ids(meta)
    if not created or not ids:
        return ""
    from tutorapp.billing import bookings

    return "; " + await bookings.pay_held_bookings(session, wallet, ids, now=utcnow(),
                                                   actor_id=payer.id)


async def _order_event(session: AsyncSession, settings: Settings,
                       payload: dict[str, Any]) -> str:
    name, data = payload["meta"]["event_name"], payload["data"]
    attributes = data["attributes"]
    variant_id = (attributes.get("first_order_item") or {}).get("variant_id")
    plan = plans.by_variant(settings, variant_id)
    if plan is None:
        return f"ignored: unknown variant {variant_id}"
    if plan.kind == "subscription":
        return "subscription order: booked from its invoice"
    if attributes.get("status") not in ("paid", "refunded", "partial_refund"):
        return f"ignored: order {attributes.get('status')}"
    payer = await _payer(session, payload["meta"])
    if payer is None:
        return "ignored: no user in custom data"
    wallet = await credits.wallet_for_owner(session, credits.wallet_owner_id(payer), plan.currency)
    payment, created = await payments.record_payment(
        session, settings, kind="order", provider_id=str(data["id"]), attributes=attributes,
        wallet=wallet, payer=payer, plan=plan,
        paid_at=subscriptions.parse_time(attributes.get("created_at")) or utcnow(),
    )
    outcome = "order paid: credits granted" if created else "payment known"
    refunded = int(attributes.get("refunded_amount") or 0)
    if refunded or name == "order_refunded":
        amount = await payments.apply_refund(session, payment, refunded_total=refunded, reason=name)
        return f"refunded {amount}"
    return outcome + await _pay_held(session, wallet, payload["meta"], created, payer)


async def _mark_checkout_paid(session: AsyncSession, meta: dict[str, Any]) -> None:
    from tutorapp.billing.models import Checkout

    try:
        checkout_id = uuid.UUID(str(custom_data(meta).get("checkout_id")))
    except ValueError:
        return
    checkout = await session.get(Checkout, checkout_id)
    if checkout is not None and checkout.paid_at is None:
        checkout.paid_at = utcnow()


@inbox.handler(PROVIDER)
async def apply(session: AsyncSession, settings: Settings, event: InboxEvent) -> str:
    """Apply one Lemon Squeezy event (the inbox counts attempts and dead-letters)."""
    name, payload = event.event_name, event.payload
    handler = (_subscription_event if name in SUBSCRIPTION_EVENTS
               else _invoice_event if name in INVOICE_EVENTS
               else _order_event if name in ORDER_EVENTS else None)
    if handler is None:
        return f"ignored: {name} is not handled"
    try:
        outcome = await handler(session, settings, payload)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A payload we cannot read will not read better on a retry.
        raise inbox.Unprocessable(f"{type(exc).__name__}: {exc}") from exc
    if outcome == DEFER:
        raise inbox.Deferred("its subscription has not been seen yet")
    if name in ("order_created", "subscription_payment_success"):
        await _mark_checkout_paid(session, payload["meta"])
    if handler is _subscription_event:  # invoices deferred for it may go now
        await inbox.wake(session, provider=PROVIDER, resource_type="subscription-invoices")
    return outcome
