"""The offline payments provider: a stand-in for Lemon Squeezy on one machine.

It keeps its "remote" objects (checkouts, orders, subscriptions, subscription
invoices) in its own table, shaped like Lemon Squeezy's JSON:API attributes. Paying
on its local checkout page, and its portal actions (renew, fail, recover, cancel,
resume, refund), emit webhooks built and signed exactly like Lemon Squeezy's
(`X-Event-Name`, `X-Signature` = hex HMAC-SHA256 of the raw body) and POST them to
our own `/webhooks/lemonsqueezy` once the transaction committed, so the offline
flow runs through the same verification, inbox and processing as production.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.config import BillingPlan, Settings
from tutorapp.core.db import after_commit
from tutorapp.core.models import Entity
from tutorapp.core.time import utcnow
from tutorapp.integrations.payments.base import (
    CheckoutCreated,
    CheckoutRequest,
    PaymentsRejected,
    Webhook,
    webhook_headers,
)

log = logging.getLogger("tutorapp.payments.sandbox")
STORE_ID = 1
WEBHOOK_PATH = "/webhooks/lemonsqueezy"


class SandboxObject(Entity):
    """One object of the sandbox's pretend Lemon Squeezy store."""

    __tablename__ = "payments_sandbox_objects"

    type: Mapped[str] = mapped_column(String(40))  # checkouts, orders, subscriptions, ...
    attributes: Mapped[dict[str, Any]]


def timestamp(value: datetime | None) -> str | None:
    """Lemon Squeezy's format: `2023-01-24T12:43:48.000000Z`."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _public(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attributes as the API shows them (without the sandbox's own bookkeeping)."""
    return {k: v for k, v in attributes.items() if k not in ("custom", "pending_invoice_id")}


def add_months(value: datetime, months: int) -> datetime:
    month = value.month - 1 + months
    year, month = value.year + month // 12, month % 12 + 1
    import calendar

    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


def webhook_body(event_name: str, resource_type: str, resource_id: str,
                 attributes: dict[str, Any], custom: dict[str, Any] | None) -> bytes:
    payload: dict[str, Any] = {
        "meta": {"test_mode": True, "event_name": event_name, "webhook_id": str(uuid.uuid4())},
        "data": {
            "type": resource_type, "id": str(resource_id), "attributes": attributes,
            "relationships": {},
            "links": {"self": f"https://api.lemonsqueezy.com/v1/{resource_type}/{resource_id}"},
        },
    }
    if custom:
        payload["meta"]["custom_data"] = custom
    return orjson.dumps(payload)


def order_attributes(*, plan: BillingPlan, email: str | None, name: str | None, now: datetime,
                     order_id: str) -> dict[str, Any]:
    total = plan.price_minor
    return {
        "store_id": STORE_ID, "customer_id": 1, "identifier": order_id,
        "order_number": 1, "user_name": name or "", "user_email": email or "",
        "currency": plan.currency, "currency_rate": "1.0000",
        "subtotal": total, "discount_total": 0, "tax": 0, "total": total,
        "subtotal_usd": total, "discount_total_usd": 0, "tax_usd": 0, "total_usd": total,
        "tax_name": None, "tax_rate": "0.00", "status": "paid", "status_formatted": "Paid",
        "refunded": False, "refunded_at": None, "refunded_amount": 0,
        "refunded_amount_usd": 0,
        "subtotal_formatted": "", "discount_total_formatted": "", "tax_formatted": "",
        "total_formatted": "",
        "first_order_item": {
            "id": 1, "order_id": order_id, "product_id": 1, "variant_id": plan.variant_id,
            "product_name": plan.name, "variant_name": "Default", "price": total,
            "quantity": 1, "created_at": timestamp(now), "updated_at": timestamp(now),
            "test_mode": True,
        },
        "urls": {"receipt": f"https://app.lemonsqueezy.com/my-orders/{order_id}"},
        "created_at": timestamp(now), "updated_at": timestamp(now), "test_mode": True,
    }


class SandboxProvider:
    name = "sandbox"

    def __init__(self, settings: Settings, session: AsyncSession, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.session = session
        self.transport = transport

    # --- the provider protocol ----------------------------------------------------

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutCreated:
        plan = self._plan(request.variant_id)
        checkout = await self._add("checkouts", {
            "store_id": STORE_ID, "variant_id": plan.variant_id, "email": request.email,
            "name": request.name, "custom": request.custom,
            "redirect_url": request.redirect_url, "paid": False,
            "expires_at": timestamp(request.expires_at),
        })
        url = f"{self.settings.public_url.rstrip('/')}/billing/sandbox/checkout/{checkout.id}"
        return CheckoutCreated(id=str(checkout.id), url=url)

    async def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        return dict((await self._get("subscriptions", subscription_id)).attributes)

    async def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        subscription = await self._get("subscriptions", subscription_id)
        attributes = subscription.attributes
        if attributes["status"] == "expired":
            raise PaymentsRejected("An expired subscription cannot be cancelled.", status=422)
        return await self._update_subscription(subscription, "subscription_cancelled", {
            "cancelled": True, "status": "cancelled", "status_formatted": "Cancelled",
            "ends_at": attributes["renews_at"],
        })

    async def resume_subscription(self, subscription_id: str) -> dict[str, Any]:
        subscription = await self._get("subscriptions", subscription_id)
        if subscription.attributes["status"] != "cancelled":
            raise PaymentsRejected("Only a cancelled subscription can be resumed.", status=422)
        return await self._update_subscription(subscription, "subscription_resumed", {
            "cancelled": False, "status": "active", "status_formatted": "Active",
            "ends_at": None,
        })

    async def list_recent(self, resource_type: str, *, since: datetime
                          ) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.session.scalars(
            select(SandboxObject).where(SandboxObject.type == resource_type)
            .order_by(SandboxObject.created_at.desc()))
        return [(str(obj.id), _public(obj.attributes)) for obj in rows
                if max(_parse(obj.attributes.get("updated_at")) or obj.updated_at,
                       obj.updated_at) >= since]

    # --- the sandbox's own pages and portal ---------------------------------------

    async def checkout(self, checkout_id: str) -> dict[str, Any]:
        return dict((await self._get("checkouts", checkout_id)).attributes)

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The stored subscription with its custom data (who subscribed)."""
        return dict((await self._get("subscriptions", subscription_id)).attributes)

    async def pay(self, checkout_id: str) -> list[str]:
        """Pay a checkout: the order (and for a subscription plan, the subscription
        and its first invoice) with their webhooks. Paying twice does nothing."""
        checkout = await self._get("checkouts", checkout_id, lock=True)
        attributes = dict(checkout.attributes)
        if attributes["paid"]:
            return []
        expires_at = _parse(attributes.get("expires_at"))
        if expires_at is not None and utcnow() >= expires_at:
            raise PaymentsRejected("This checkout has expired.", status=410)
        checkout.attributes = attributes | {"paid": True}
        plan = self._plan(attributes["variant_id"])
        custom = attributes["custom"]
        now = utcnow()
        order = await self._add("orders", {})
        order.attributes = order_attributes(plan=plan, email=attributes["email"],
                                            name=attributes["name"], now=now,
                                            order_id=str(order.id))
        events = ["order_created"]
        self._send("order_created", "orders", order, custom)
        if plan.kind != "subscription":
            return events
        subscription = await self._add("subscriptions", {})
        subscription.attributes = {
            "store_id": STORE_ID, "customer_id": 1, "order_id": str(order.id),
            "order_item_id": 1, "product_id": 1, "variant_id": plan.variant_id,
            "product_name": plan.name, "variant_name": "Default",
            "user_name": attributes["name"] or "", "user_email": attributes["email"] or "",
            "status": "active", "status_formatted": "Active", "card_brand": "visa",
            "card_last_four": "4242", "pause": None, "cancelled": False,
            "trial_ends_at": None, "billing_anchor": now.day,
            "first_subscription_item": {
                "id": 1, "subscription_id": str(subscription.id), "price_id": 1,
                "quantity": 1, "created_at": timestamp(now), "updated_at": timestamp(now),
            },
            "urls": self._subscription_urls(str(subscription.id)),
            "renews_at": timestamp(add_months(now, plan.interval_months)), "ends_at": None,
            "created_at": timestamp(now), "updated_at": timestamp(now), "test_mode": True,
            "custom": custom,
        }
        self._send("subscription_created", "subscriptions", subscription, custom)
        await self._invoice(subscription, plan, "initial", "subscription_payment_success", now)
        return [*events, "subscription_created", "subscription_payment_success"]

    async def renew(self, subscription_id: str) -> None:
        """The next period is charged: a renewal invoice and the moved renewal date."""
        subscription = await self._get("subscriptions", subscription_id, lock=True)
        plan = self._plan(subscription.attributes["variant_id"])
        now = utcnow()
        await self._invoice(subscription, plan, "renewal", "subscription_payment_success", now)
        renews_at = datetime.fromisoformat(subscription.attributes["renews_at"].replace("Z", "+00:00"))
        await self._update_subscription(subscription, "subscription_updated", {
            "status": "active", "status_formatted": "Active",
            "renews_at": timestamp(add_months(max(renews_at, now), plan.interval_months)),
        })

    async def fail_payment(self, subscription_id: str) -> None:
        """A renewal charge fails: the subscription is past due."""
        subscription = await self._get("subscriptions", subscription_id, lock=True)
        plan = self._plan(subscription.attributes["variant_id"])
        await self._invoice(subscription, plan, "renewal", "subscription_payment_failed",
                            utcnow(), status="pending")
        await self._update_subscription(subscription, "subscription_updated", {
            "status": "past_due", "status_formatted": "Past due",
        })

    async def recover_payment(self, subscription_id: str) -> None:
        """A retried charge succeeds: the failed invoice is paid, the subscription active."""
        subscription = await self._get("subscriptions", subscription_id, lock=True)
        plan = self._plan(subscription.attributes["variant_id"])
        invoice_id = subscription.attributes.get("pending_invoice_id")
        if not invoice_id:
            raise PaymentsRejected("No failed payment to recover.", status=422)
        invoice = await self._get("subscription-invoices", invoice_id, lock=True)
        now = utcnow()
        invoice.attributes = dict(invoice.attributes) | {
            "status": "paid", "status_formatted": "Paid", "updated_at": timestamp(now),
        }
        self._send("subscription_payment_recovered", "subscription-invoices", invoice,
                   subscription.attributes.get("custom"))
        renews_at = datetime.fromisoformat(subscription.attributes["renews_at"].replace("Z", "+00:00"))
        await self._update_subscription(subscription, "subscription_updated", {
            "status": "active", "status_formatted": "Active", "pending_invoice_id": None,
            "renews_at": timestamp(add_months(max(renews_at, now), plan.interval_months)),
        })

    # --- helpers ----------------------------------------------------------------------

    def _plan(self, variant_id: str) -> BillingPlan:
        for plan in self.settings.billing_plans:
            if str(plan.variant_id) == str(variant_id):
                return plan
        raise PaymentsRejected(f"No variant {variant_id} in this store.", status=404)

    def _subscription_urls(self, subscription_id: str) -> dict[str, str]:
        base = f"{self.settings.public_url.rstrip('/')}/billing/sandbox/portal/{subscription_id}"
        return {"update_payment_method": base, "customer_portal": base}

    async def _add(self, type_: str, attributes: dict[str, Any]) -> SandboxObject:
        obj = SandboxObject(type=type_, attributes=attributes)
        self.session.add(obj)
        await self.session.flush()
        return obj

    async def _get(self, type_: str, object_id: str, *, lock: bool = False) -> SandboxObject:
        try:
            key = uuid.UUID(str(object_id))
        except ValueError:
            key = None
        obj = await self.session.get(SandboxObject, key, with_for_update=lock or None) if key else None
        if obj is None or obj.type != type_:
            raise PaymentsRejected(f"No {type_} {object_id} in this store.", status=404)
        return obj

    async def _invoice(self, subscription: SandboxObject, plan: BillingPlan, reason: str,
                       event: str, now: datetime, *, status: str = "paid") -> SandboxObject:
        sub = subscription.attributes
        invoice = await self._add("subscription-invoices", {})
        total = plan.price_minor
        invoice.attributes = {
            "store_id": STORE_ID, "subscription_id": str(subscription.id),
            "customer_id": sub["customer_id"], "user_name": sub["user_name"],
            "user_email": sub["user_email"], "billing_reason": reason,
            "card_brand": "visa", "card_last_four": "4242", "currency": plan.currency,
            "currency_rate": "1.0000", "status": status,
            "status_formatted": status.replace("_", " ").title(), "refunded": False,
            "refunded_at": None, "subtotal": total, "discount_total": 0, "tax": 0,
            "tax_inclusive": False, "total": total, "refunded_amount": 0,
            "subtotal_usd": total, "discount_total_usd": 0, "tax_usd": 0, "total_usd": total,
            "refunded_amount_usd": 0,
            "urls": {"invoice_url": f"https://app.lemonsqueezy.com/my-orders/{invoice.id}"},
            "created_at": timestamp(now), "updated_at": timestamp(now), "test_mode": True,
        }
        if status != "paid":
            subscription.attributes = dict(sub) | {"pending_invoice_id": str(invoice.id)}
        self._send(event, "subscription-invoices", invoice, sub.get("custom"))
        return invoice

    async def _update_subscription(self, subscription: SandboxObject, event: str,
                                   changes: dict[str, Any]) -> dict[str, Any]:
        attributes = dict(subscription.attributes) | changes
        attributes["updated_at"] = timestamp(utcnow())
        subscription.attributes = attributes
        await self.session.flush()
        self._send(event, "subscriptions", subscription, attributes.get("custom"))
        return _public(attributes)

    def _send(self, event_name: str, resource_type: str, obj: SandboxObject,
              custom: dict[str, Any] | None) -> None:
        """Queue the webhook; it is POSTed once the transaction committed."""
        attributes = _public(obj.attributes)
        body = webhook_body(event_name, resource_type, str(obj.id), attributes, custom)
        headers = webhook_headers(self.settings.payments_webhook_secret, event_name, body)
        outgoing: list[Webhook] = self.session.info.setdefault("sandbox_webhooks", [])
        if not outgoing:
            after_commit(self.session, lambda: self._post_all(outgoing))
        outgoing.append(Webhook(event_name=event_name, body=body, headers=headers))

    async def _post_all(self, outgoing: list[Webhook]) -> None:
        batch = list(outgoing)
        outgoing.clear()
        self.session.info.pop("sandbox_webhooks", None)
        args: dict[str, Any] = {"base_url": self.settings.public_url, "timeout": 10.0}
        if self.transport is not None:
            args["transport"] = self.transport
        async with httpx.AsyncClient(**args) as client:
            for webhook in batch:
                try:
                    response = await client.post(WEBHOOK_PATH, content=webhook.body,
                                                 headers=webhook.headers)
                    if response.status_code != 200:
                        log.warning("sandbox webhook %s answered %s", webhook.event_name,
                                    response.status_code)
                except httpx.HTTPError:
                    log.exception("sandbox webhook %s could not be delivered", webhook.event_name)
