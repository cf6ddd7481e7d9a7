"""Reconciliation: what the payments provider has and our inbox lacks.

Lemon Squeezy retries a failed webhook delivery only a few times, so a missed
webhook would lose a payment. Every 10 minutes `billing.reconcile` pulls the
orders, subscription invoices and subscriptions changed in the last
`TUTORAPP_LEMONSQUEEZY_RECONCILE_HOURS` from the provider's API (the sandbox
answers the same calls) and, for each one our records lack or hold in an older
state, puts the event Lemon Squeezy would have sent into the inbox, under the
dedupe key the real delivery has: if the webhook arrives after all, it is a
duplicate. The inbox then applies it like any delivery (credits granted once,
held bookings paid).

The provider's objects carry no `custom_data`: a missing order or subscription
is matched to the checkout we started for it (same payer email and plan, started
before it, not yet paid), whose custom data we kept. An unmatched one is logged
and left alone (we cannot know whose it is).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import plans, subscriptions, webhooks
from tutorapp.billing.models import Checkout, Payment, Subscription
from tutorapp.config import BillingPlan, Settings
from tutorapp.core.db import Database
from tutorapp.integrations.payments import get_provider

log = logging.getLogger("tutorapp.billing.reconcile")
PAID = ("paid", "refunded", "partial_refund")
RESOURCES = ("orders", "subscriptions", "subscription-invoices")


async def run(db: Database, settings: Settings, *, now: datetime) -> dict[str, int]:
    """Pull recent objects (no transaction open during the API calls), then store
    the events the inbox lacks in one short transaction."""
    since = now - timedelta(hours=settings.lemonsqueezy_reconcile_hours)
    async with db.session() as session:  # only the sandbox reads through it
        provider = get_provider(settings, session)
        remote = {kind: await provider.list_recent(kind, since=since) for kind in RESOURCES}
    async with db.unit_of_work() as session:
        return await store_missing(session, settings, remote)


async def store_missing(session: AsyncSession, settings: Settings,
                        remote: dict[str, list[tuple[str, dict[str, Any]]]]) -> dict[str, int]:
    counts = {"stored": 0, "unmatched": 0, "seen": sum(len(v) for v in remote.values())}
    sub_custom: dict[str, dict[str, Any]] = {}
    for sub_id, attributes in remote.get("subscriptions", []):
        event = await _subscription(session, settings, sub_id, attributes, sub_custom)
        await _store(session, counts, event, "subscriptions", sub_id, attributes)
    for invoice_id, attributes in remote.get("subscription-invoices", []):
        event = await _invoice(session, settings, invoice_id, attributes, sub_custom)
        await _store(session, counts, event, "subscription-invoices", invoice_id, attributes)
    for order_id, attributes in remote.get("orders", []):
        event = await _order(session, settings, order_id, attributes)
        await _store(session, counts, event, "orders", order_id, attributes)
    if counts["stored"] or counts["unmatched"]:
        log.warning("reconciliation: %s", counts)
    return counts


Missing = tuple[str, dict[str, Any] | None] | None  # (event name, custom data) or nothing


async def _store(session: AsyncSession, counts: dict[str, int], event: Missing,
                 resource_type: str, resource_id: str, attributes: dict[str, Any]) -> None:
    if event is None:
        return
    name, custom = event
    if custom is None:
        counts["unmatched"] += 1
        log.warning("reconciliation: %s %s matches no checkout of ours", resource_type,
                    resource_id)
        return
    payload = {"meta": {"event_name": name, "custom_data": custom, "reconciled": True},
               "data": {"type": resource_type, "id": str(resource_id),
                        "attributes": attributes, "relationships": {}}}
    _, created = await webhooks.store(session, payload, orjson.dumps(payload))
    counts["stored"] += int(created)


async def _checkout_custom(session: AsyncSession, *, plan: BillingPlan, email: str | None,
                           user_id: Any = None, before: datetime | None,
                           unpaid: bool = True) -> dict[str, Any] | None:
    """The custom data of the checkout this object came from: the payer's newest
    (unpaid) checkout of that plan started before it."""
    query = (select(Checkout.custom, Checkout.user_id, Checkout.id)
             .join(User, User.id == Checkout.user_id)
             .where(Checkout.plan_key == plan.key)
             .order_by(Checkout.created_at.desc()).limit(1))
    if unpaid:
        query = query.where(Checkout.paid_at.is_(None))
    if user_id is not None:
        query = query.where(Checkout.user_id == user_id)
    elif email:
        query = query.where(func.lower(User.email) == email.strip().lower())
    else:
        return None
    if before is not None:
        query = query.where(Checkout.created_at <= before)
    row = (await session.execute(query)).first()
    if row is None:
        return None
    custom, owner, checkout_id = row
    return dict(custom or {"user_id": str(owner), "checkout_id": str(checkout_id),
                           "plan": plan.key})


async def _subscription(session: AsyncSession, settings: Settings, sub_id: str,
                        attributes: dict[str, Any], sub_custom: dict[str, dict[str, Any]]
                        ) -> Missing:
    mirror = await subscriptions.by_provider_id(session, sub_id)
    if mirror is not None:
        sub_custom[sub_id] = {"user_id": str(mirror.user_id)}
        updated = subscriptions.parse_time(attributes.get("updated_at"))
        if updated is not None and updated > mirror.provider_updated_at:
            return "subscription_updated", sub_custom[sub_id]
        return None
    plan = plans.by_variant(settings, attributes.get("variant_id"))
    if plan is None or plan.kind != "subscription":
        return None
    custom = await _checkout_custom(session, plan=plan, email=attributes.get("user_email"),
                                    before=subscriptions.parse_time(attributes.get("created_at")))
    if custom is not None:
        sub_custom[sub_id] = custom
    return "subscription_created", custom


async def _invoice(session: AsyncSession, settings: Settings, invoice_id: str,
                   attributes: dict[str, Any], sub_custom: dict[str, dict[str, Any]]) -> Missing:
    if attributes.get("status") not in PAID:
        return None
    payment = await session.scalar(select(Payment).where(
        Payment.kind == "subscription_invoice", Payment.provider_id == str(invoice_id)))
    if payment is not None:
        if int(attributes.get("refunded_amount") or 0) > payment.refunded_minor:
            return "subscription_payment_refunded", {"user_id": str(payment.user_id)}
        return None
    sub_id = str(attributes.get("subscription_id"))
    custom = sub_custom.get(sub_id)
    mirror: Subscription | None = await subscriptions.by_provider_id(session, sub_id)
    if mirror is not None and attributes.get("billing_reason") == "initial":
        plan = plans.by_key(settings, mirror.plan_key)
        # its subscription's order may have marked the checkout paid already
        custom = await _checkout_custom(
            session, plan=plan, email=None, user_id=mirror.user_id, unpaid=False,
            before=subscriptions.parse_time(attributes.get("created_at"))) or custom
    if custom is None and mirror is not None:
        custom = {"user_id": str(mirror.user_id)}
    return "subscription_payment_success", custom


async def _order(session: AsyncSession, settings: Settings, order_id: str,
                 attributes: dict[str, Any]) -> Missing:
    plan = plans.by_variant(settings, (attributes.get("first_order_item") or {}).get("variant_id"))
    if plan is None or plan.kind == "subscription" or attributes.get("status") not in PAID:
        return None  # a subscription's order is booked from its invoice
    payment = await session.scalar(select(Payment).where(
        Payment.kind == "order", Payment.provider_id == str(order_id)))
    if payment is not None:
        if int(attributes.get("refunded_amount") or 0) > payment.refunded_minor:
            return "order_refunded", {"user_id": str(payment.user_id)}
        return None
    return "order_created", await _checkout_custom(
        session, plan=plan, email=attributes.get("user_email"),
        before=subscriptions.parse_time(attributes.get("created_at")))
