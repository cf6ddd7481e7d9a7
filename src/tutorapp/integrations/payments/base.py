"""What a payments provider does (Lemon Squeezy as merchant of record, or the
offline sandbox), how webhooks are signed, and how a failure says it is final."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tutorapp.core.errors import PermanentFailure

JSON_API = "application/vnd.api+json"


@dataclass(frozen=True)
class CheckoutRequest:
    variant_id: str
    email: str | None
    name: str | None
    custom: dict[str, str]  # comes back in every webhook's meta.custom_data
    redirect_url: str | None = None
    expires_at: datetime | None = None  # a checkout paying a held booking ends with the hold


@dataclass(frozen=True)
class CheckoutCreated:
    id: str
    url: str


@dataclass(frozen=True)
class Webhook:
    """A webhook delivery as it goes over the wire."""

    event_name: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class PaymentsError(Exception):
    """A failure worth retrying: network error, timeout, 429 or 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PaymentsRejected(PermanentFailure):
    """The provider refused the request for good (4xx other than 429)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PaymentsProvider(Protocol):
    name: str

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutCreated:
        """A hosted checkout for one variant; returns its id and URL."""
        ...

    async def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription's attributes (with fresh signed `urls`)."""
        ...

    async def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Cancel at the end of the period (grace until `ends_at`); new attributes."""
        ...

    async def resume_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Undo a cancellation during its grace period; new attributes."""
        ...

    async def list_recent(self, resource_type: str, *, since: datetime
                          ) -> list[tuple[str, dict[str, Any]]]:
        """(id, attributes) of the store's `orders`, `subscriptions` or
        `subscription-invoices` created or updated since `since` (reconciliation)."""
        ...


def signature(secret: str, body: bytes) -> str:
    """Lemon Squeezy's `X-Signature`: the hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: str, body: bytes, sent: str | None) -> bool:
    if not sent or not secret:
        return False
    return hmac.compare_digest(signature(secret, body), sent.strip())


def webhook_headers(secret: str, event_name: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Event-Name": event_name,
        "X-Signature": signature(secret, body),
    }
