"""Lemon Squeezy webhooks as Lemon Squeezy sends them, signed, and helpers to
deliver them to our endpoint and run the processing job's function."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from tutorapp.billing import webhooks  # noqa: F401 - registers the Lemon Squeezy handler
from tutorapp.config import Settings
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.integrations.payments.base import signature
from tutorapp.webhooks import service as inbox

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def ts(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(event_name: str, resource_type: str, resource_id: str, attributes: dict[str, Any],
             custom: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"test_mode": True, "event_name": event_name,
                            "webhook_id": str(uuid.uuid4())}
    if custom is not None:
        meta["custom_data"] = custom
    return {"meta": meta, "data": {
        "type": resource_type, "id": resource_id, "attributes": attributes,
        "relationships": {},
        "links": {"self": f"https://api.lemonsqueezy.com/v1/{resource_type}/{resource_id}"},
    }}


def subscription_event(event_name: str, *, sub_id: str = "501", user_id: uuid.UUID,
                       status: str = "active", updated_at: datetime = T0,
                       variant_id: int = 1001, renews_at: datetime | None = None,
                       ends_at: datetime | None = None, cancelled: bool = False
                       ) -> dict[str, Any]:
    attributes = {
        "store_id": 1, "customer_id": 77, "order_id": 9001, "order_item_id": 1, "product_id": 3,
        "variant_id": variant_id, "product_name": "Lessons", "variant_name": "Monthly",
        "user_name": "Pat Parent", "user_email": "pat@example.com", "status": status,
        "status_formatted": status.replace("_", " ").title(), "card_brand": "visa",
        "card_last_four": "4242", "pause": None, "cancelled": cancelled, "trial_ends_at": None,
        "billing_anchor": 2,
        "urls": {"update_payment_method": f"https://tutorapp.lemonsqueezy.com/subscription/{sub_id}/payment-details?signature=x",
                 "customer_portal": "https://tutorapp.lemonsqueezy.com/billing?expires=1&signature=y"},
        "renews_at": ts(renews_at or T0 + timedelta(days=30)), "ends_at": ts(ends_at),
        "created_at": ts(T0), "updated_at": ts(updated_at), "test_mode": True,
    }
    return envelope(event_name, "subscriptions", sub_id, attributes, {"user_id": str(user_id)})


def invoice_event(event_name: str, *, invoice_id: str = "7001", sub_id: str = "501",
                  user_id: uuid.UUID, status: str = "paid", total: int = 10_000, tax: int = 0,
                  refunded_amount: int = 0, billing_reason: str = "initial",
                  created_at: datetime = T0, updated_at: datetime | None = None
                  ) -> dict[str, Any]:
    attributes = {
        "store_id": 1, "subscription_id": int(sub_id), "customer_id": 77,
        "user_name": "Pat Parent", "user_email": "pat@example.com",
        "billing_reason": billing_reason, "card_brand": "visa", "card_last_four": "4242",
        "currency": "EUR", "currency_rate": "1.00000000", "status": status,
        "status_formatted": status.replace("_", " ").title(),
        "refunded": refunded_amount > 0, "refunded_at": ts(updated_at) if refunded_amount else None,
        "subtotal": total - tax, "discount_total": 0, "tax": tax, "tax_inclusive": False,
        "total": total, "refunded_amount": refunded_amount, "subtotal_usd": total - tax,
        "discount_total_usd": 0, "tax_usd": tax, "total_usd": total,
        "refunded_amount_usd": refunded_amount,
        "urls": {"invoice_url": f"https://app.lemonsqueezy.com/my-orders/{invoice_id}/subscription-invoice/{invoice_id}"},
        "created_at": ts(created_at), "updated_at": ts(updated_at or created_at), "test_mode": True,
    }
    return envelope(event_name, "subscription-invoices", invoice_id, attributes,
                    {"user_id": str(user_id)})


def order_event(event_name: str, *, order_id: str = "9101", user_id: uuid.UUID,
                variant_id: int = 1003, total: int = 24_000, tax: int = 0, status: str = "paid",
                refunded_amount: int = 0, created_at: datetime = T0,
                updated_at: datetime | None = None, booking_id: uuid.UUID | None = None
                ) -> dict[str, Any]:
    attributes = {
        "store_id": 1, "customer_id": 77, "identifier": str(uuid.uuid4()), "order_number": 42,
        "user_name": "Pat Parent", "user_email": "pat@example.com", "currency": "EUR",
        "currency_rate": "1.0000", "subtotal": total - tax, "discount_total": 0, "tax": tax,
        "total": total, "subtotal_usd": total - tax, "discount_total_usd": 0, "tax_usd": tax,
        "total_usd": total, "tax_name": "VAT" if tax else None, "tax_rate": "0.00",
        "status": status, "status_formatted": status.title(), "refunded": refunded_amount > 0,
        "refunded_at": ts(updated_at) if refunded_amount else None,
        "refunded_amount": refunded_amount,
        "first_order_item": {"id": 1, "order_id": int(order_id), "product_id": 3,
                             "variant_id": variant_id, "product_name": "Lessons",
                             "variant_name": "Pack", "price": total, "quantity": 1,
                             "created_at": ts(created_at), "updated_at": ts(created_at),
                             "test_mode": True},
        "urls": {"receipt": f"https://app.lemonsqueezy.com/my-orders/{order_id}?signature=z"},
        "created_at": ts(created_at), "updated_at": ts(updated_at or created_at), "test_mode": True,
    }
    custom: dict[str, Any] = {"user_id": str(user_id)}
    if booking_id is not None:
        custom["booking_id"] = str(booking_id)
    return envelope(event_name, "orders", order_id, attributes, custom)


def signed(settings: Settings, payload: dict[str, Any], *, secret: str | None = None
           ) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    return body, {
        "Content-Type": "application/json",
        "X-Event-Name": payload["meta"]["event_name"],
        "X-Signature": signature(secret or settings.payments_webhook_secret, body),
    }


async def deliver(client: httpx.AsyncClient, settings: Settings, payload: dict[str, Any]
                  ) -> httpx.Response:
    body, headers = signed(settings, payload)
    return await client.post("/webhooks/lemonsqueezy", content=body, headers=headers)


async def process_pending(db: Database) -> list[str]:
    """What the `webhooks.process` jobs do, attempt after attempt (deferred events
    again at once, as if their backoff had passed), until nothing moves."""
    outcomes: list[str] = []
    while True:
        async with db.session() as session:
            due = await inbox.due(session, now=utcnow() + timedelta(days=1))
        progressed = False
        for event_id, _key in due:
            outcome = await process(db, event_id)
            outcomes.append(outcome)
            progressed = progressed or outcome != "deferred"
        if not progressed:
            return outcomes


async def process(db: Database, event_id: str | uuid.UUID) -> str:
    async with db.unit_of_work() as session:
        return await inbox.process(session, db.settings, uuid.UUID(str(event_id)))


from tests.scheduling.conftest import market  # noqa: E402, F401 - a catalogue and an admin
