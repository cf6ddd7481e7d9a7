"""The webhook inbox: store each verified delivery once, process it in a job.

`store` inserts the event under a dedupe key (event name, resource type and id,
the resource's `updated_at`): a repeated delivery conflicts and is not stored
again. `process_event` (run by the `billing.process_event` job, and by the
`billing.sweep` job for anything left behind) applies it; it is safe to run twice.
An event that cannot be applied yet (an invoice whose subscription we have not
seen) stays unprocessed and is retried by the sweep.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import credits, payments, plans, subscriptions
from tutorapp.billing.models import WebhookEvent
from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.errors import AppError
from tutorapp.core.fields import storable, storable_json
from tutorapp.core.time import utcnow

log = logging.getLogger("tutorapp.billing.webhooks")
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
                ) -> tuple[uuid.UUID | None, bool]:
    """Insert the event unless we have it: (its id, whether it is new)."""
    key = storable(dedupe_key(payload, body), 300)
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    event_id = uuid.uuid4()
    now = utcnow()
    result = await session.execute(
        insert(WebhookEvent).values(
            id=event_id, dedupe_key=key, event_name=storable(payload["meta"]["event_name"], 64),
            resource_type=storable(payload["data"]["type"], 40),
            resource_id=storable(str(payload["data"]["id"]), 64),
            payload=storable_json(payload), created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    if result.rowcount == 1:
        return event_id, True
    existing = await session.scalar(select(WebhookEvent.id).where(WebhookEvent.dedupe_key == key))
    return existing, False


async def _payer(session: AsyncSession, meta: dict[str, Any]) -> User | None:
    custom = meta.get("custom_data") or {}
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
    payer = await session.get(User, subscription.user_id)
    plan = plans.by_key(settings, subscription.plan_key)
    if name in ("subscription_payment_success", "subscription_payment_recovered"):
        if attributes.get("status") not in ("paid", "refunded", "partial_refund"):
            return f"ignored: invoice {attributes.get('status')}"
    assert payer is not None
    from tutorapp.billing.models import Wallet

    wallet = await session.get(Wallet, subscription.wallet_id)
    assert wallet is not None
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
        outcome = f"refunded {amount}"
    return outcome


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
    booking_id = (payload["meta"].get("custom_data") or {}).get("booking_id")
    if created and booking_id:
        from tutorapp.billing import bookings

        outcome += "; " + await bookings.pay_held_booking(session, wallet, booking_id,
                                                           now=utcnow(), actor_id=payer.id)
    return outcome


async def _mark_checkout_paid(session: AsyncSession, meta: dict[str, Any]) -> None:
    from tutorapp.billing.models import Checkout

    try:
        checkout_id = uuid.UUID(str((meta.get("custom_data") or {}).get("checkout_id")))
    except ValueError:
        return
    checkout = await session.get(Checkout, checkout_id)
    if checkout is not None and checkout.paid_at is None:
        checkout.paid_at = utcnow()


async def process_event(session: AsyncSession, settings: Settings, event_id: uuid.UUID) -> str:
    """Apply one stored event; a processed event is skipped (safe to run twice)."""
    event = await session.get(WebhookEvent, event_id, with_for_update=True)
    if event is None:
        return "missing"
    if event.processed_at is not None:
        return "skip: processed"
    name = event.event_name
    handler = (_subscription_event if name in SUBSCRIPTION_EVENTS
               else _invoice_event if name in INVOICE_EVENTS
               else _order_event if name in ORDER_EVENTS else None)
    if handler is None:
        outcome = f"ignored: {name} is not handled"
    else:
        try:
            async with session.begin_nested():
                outcome = await handler(session, settings, event.payload)
        except (KeyError, TypeError, ValueError) as exc:
            # A payload we cannot read will not read better on a retry: keep it, say
            # why, and stop (a database error, by contrast, propagates and is retried).
            log.exception("billing event %s (%s) cannot be applied", event.id, name)
            outcome = f"failed: {type(exc).__name__}: {exc}"
    if outcome == DEFER:
        return outcome
    if name in ("order_created", "subscription_payment_success"):
        await _mark_checkout_paid(session, event.payload["meta"])
    event.processed_at = utcnow()
    event.outcome = outcome[:200]
    await session.flush()
    return outcome


async def pending(session: AsyncSession, *, older_than: timedelta = timedelta(0),
                  limit: int = 500) -> list[uuid.UUID]:
    """Unprocessed events in arrival order (the sweep's work list)."""
    return list(await session.scalars(
        select(WebhookEvent.id)
        .where(WebhookEvent.processed_at.is_(None),
               WebhookEvent.created_at <= utcnow() - older_than)
        .order_by(WebhookEvent.created_at, WebhookEvent.id).limit(limit)
    ))

