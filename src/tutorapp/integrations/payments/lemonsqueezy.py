"""Lemon Squeezy's REST API (JSON:API): checkouts and subscriptions.

Every call has an explicit timeout. Network errors, timeouts, 429 and 5xx raise
`PaymentsError` (retry); other 4xx raise `PaymentsRejected` (final)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tutorapp.config import Settings
from tutorapp.integrations.payments.base import (
    JSON_API,
    CheckoutCreated,
    CheckoutRequest,
    PaymentsError,
    PaymentsRejected,
)


class LemonSqueezyProvider:
    name = "lemonsqueezy"

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        if not (settings.lemonsqueezy_api_key and settings.lemonsqueezy_store_id):
            raise ValueError("Lemon Squeezy needs TUTORAPP_LEMONSQUEEZY_API_KEY and "
                             "TUTORAPP_LEMONSQUEEZY_STORE_ID")
        self.store_id = settings.lemonsqueezy_store_id
        self._client_args: dict[str, Any] = {
            "base_url": settings.lemonsqueezy_api_url.rstrip("/") + "/",
            "timeout": httpx.Timeout(settings.lemonsqueezy_timeout_seconds),
            "headers": {
                "Accept": JSON_API,
                "Content-Type": JSON_API,
                "Authorization": f"Bearer {settings.lemonsqueezy_api_key}",
            },
        }
        if transport is not None:
            self._client_args["transport"] = transport

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                    params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(**self._client_args) as client:
                response = await client.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:  # connect/read errors and timeouts
            raise PaymentsError(f"Lemon Squeezy {method} {path}: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("retry-after")
            raise PaymentsError(
                f"Lemon Squeezy {method} {path} answered {response.status_code}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if response.status_code >= 400:
            raise PaymentsRejected(
                f"Lemon Squeezy {method} {path} answered {response.status_code}: "
                f"{_error_detail(response)}", status=response.status_code,
            )
        return response.json()

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutCreated:
        checkout_data: dict[str, Any] = {"custom": request.custom}
        if request.email:
            checkout_data["email"] = request.email
        if request.name:
            checkout_data["name"] = request.name
        attributes: dict[str, Any] = {"checkout_data": checkout_data}
        if request.expires_at is not None:
            attributes["expires_at"] = request.expires_at.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.000000Z")
        if request.redirect_url:
            attributes["product_options"] = {"redirect_url": request.redirect_url}
        body = {
            "data": {
                "type": "checkouts",
                "attributes": attributes,
                "relationships": {
                    "store": {"data": {"type": "stores", "id": str(self.store_id)}},
                    "variant": {"data": {"type": "variants", "id": str(request.variant_id)}},
                },
            }
        }
        data = (await self._call("POST", "checkouts", body))["data"]
        return CheckoutCreated(id=str(data["id"]), url=data["attributes"]["url"])

    async def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        data = await self._call("GET", f"subscriptions/{subscription_id}")
        return data["data"]["attributes"]

    async def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        data = await self._call("DELETE", f"subscriptions/{subscription_id}")
        return data["data"]["attributes"]

    async def resume_subscription(self, subscription_id: str) -> dict[str, Any]:
        body = {"data": {"type": "subscriptions", "id": str(subscription_id),
                         "attributes": {"cancelled": False}}}
        data = await self._call("PATCH", f"subscriptions/{subscription_id}", body)
        return data["data"]["attributes"]


    async def list_recent(self, resource_type: str, *, since: datetime
                          ) -> list[tuple[str, dict[str, Any]]]:
        """Page through the store's list (100 a page, at most `MAX_PAGES`), keeping
        what was created or updated since `since`; stop at the last page or at a
        page with nothing that recent."""
        found: list[tuple[str, dict[str, Any]]] = []
        for number in range(1, MAX_PAGES + 1):
            page = await self._call("GET", resource_type, params={
                "filter[store_id]": str(self.store_id), "page[size]": "100",
                "page[number]": str(number)})
            recent = [(str(item["id"]), item["attributes"]) for item in page.get("data") or []
                      if _recent(item["attributes"], since)]
            found.extend(recent)
            last = ((page.get("meta") or {}).get("page") or {}).get("lastPage") or number
            if not recent or number >= int(last):
                break
        return found


MAX_PAGES = 20


def _recent(attributes: dict[str, Any], since: datetime) -> bool:
    for key in ("updated_at", "created_at"):
        value = attributes.get(key)
        if value and datetime.fromisoformat(str(value).replace("Z", "+00:00")) >= since:
            return True
    return False


def _error_detail(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("detail") or e.get("title")) for e in errors) or response.text
    except ValueError:
        return response.text[:200]
