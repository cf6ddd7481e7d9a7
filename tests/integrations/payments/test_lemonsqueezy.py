"""The Lemon Squeezy client against respx mocks answering as the API documents."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from tests.conftest import make_settings
from tutorapp.integrations.payments.base import (
    CheckoutRequest,
    PaymentsError,
    PaymentsRejected,
    signature,
    signature_is_valid,
)
from tutorapp.integrations.payments.lemonsqueezy import LemonSqueezyProvider

API = "https://api.lemonsqueezy.com/v1"
CHECKOUT_ID = "5e8b546c-c561-4a2c-a586-40c18bb2a195"


def ls_settings():
    return make_settings("sqlite:///:memory:", payments_provider="lemonsqueezy",
                         lemonsqueezy_api_key="test-api-key", lemonsqueezy_store_id="4321",
                         lemonsqueezy_webhook_secret="whsec-0123456789")


def checkout_response() -> dict:
    return {
        "jsonapi": {"version": "1.0"},
        "links": {"self": f"{API}/checkouts/{CHECKOUT_ID}"},
        "data": {
            "type": "checkouts", "id": CHECKOUT_ID,
            "attributes": {
                "store_id": 4321, "variant_id": 1003, "custom_price": None,
                "product_options": {"redirect_url": "http://127.0.0.1:8000/"},
                "checkout_options": {"embed": False, "media": True, "logo": True},
                "checkout_data": {"email": "pat@example.com", "name": "Pat",
                                  "custom": {"user_id": "u-1"}},
                "expires_at": None, "created_at": "2026-11-02T09:00:00.000000Z",
                "updated_at": "2026-11-02T09:00:00.000000Z", "test_mode": False,
                "url": f"https://tutorapp.lemonsqueezy.com/checkout/custom/{CHECKOUT_ID}?signature=abc",
            },
            "relationships": {
                "store": {"links": {"related": f"{API}/checkouts/{CHECKOUT_ID}/store"}},
                "variant": {"links": {"related": f"{API}/checkouts/{CHECKOUT_ID}/variant"}},
            },
            "links": {"self": f"{API}/checkouts/{CHECKOUT_ID}"},
        },
    }


def subscription_response(status: str, *, cancelled: bool, ends_at: str | None) -> dict:
    return {"jsonapi": {"version": "1.0"}, "links": {"self": f"{API}/subscriptions/1"}, "data": {
        "type": "subscriptions", "id": "1",
        "attributes": {
            "store_id": 4321, "customer_id": 1, "order_id": 1, "order_item_id": 1,
            "product_id": 1, "variant_id": 1001, "product_name": "Lessons",
            "variant_name": "Monthly", "user_name": "Pat", "user_email": "pat@example.com",
            "status": status, "status_formatted": status.title(), "card_brand": "visa",
            "card_last_four": "4242", "pause": None, "cancelled": cancelled,
            "trial_ends_at": None, "billing_anchor": 2,
            "urls": {"update_payment_method": "https://tutorapp.lemonsqueezy.com/subscription/1/payment-details?expires=1&signature=a",
                     "customer_portal": "https://tutorapp.lemonsqueezy.com/billing?expires=1&signature=b"},
            "renews_at": "2026-12-02T09:00:00.000000Z", "ends_at": ends_at,
            "created_at": "2026-11-02T09:00:00.000000Z",
            "updated_at": "2026-11-05T10:00:00.000000Z", "test_mode": False,
        },
    }}


@respx.mock
async def test_create_checkout_sends_the_documented_json_api_request() -> None:
    route = respx.post(f"{API}/checkouts").mock(
        return_value=httpx.Response(201, json=checkout_response(),
                                    headers={"Content-Type": "application/vnd.api+json"}))
    provider = LemonSqueezyProvider(ls_settings())
    created = await provider.create_checkout(CheckoutRequest(
        variant_id="1003", email="pat@example.com", name="Pat",
        custom={"user_id": "u-1", "checkout_id": "c-1"}, redirect_url="http://127.0.0.1:8000/"))
    assert created.id == CHECKOUT_ID
    assert created.url.startswith("https://tutorapp.lemonsqueezy.com/checkout/custom/")
    request = route.calls.last.request
    assert request.headers["accept"] == "application/vnd.api+json"
    assert request.headers["content-type"] == "application/vnd.api+json"
    assert request.headers["authorization"] == "Bearer test-api-key"
    assert json.loads(request.content) == {"data": {
        "type": "checkouts",
        "attributes": {
            "checkout_data": {"custom": {"user_id": "u-1", "checkout_id": "c-1"},
                              "email": "pat@example.com", "name": "Pat"},
            "product_options": {"redirect_url": "http://127.0.0.1:8000/"},
        },
        "relationships": {
            "store": {"data": {"type": "stores", "id": "4321"}},
            "variant": {"data": {"type": "variants", "id": "1003"}},
        },
    }}


@respx.mock
async def test_cancel_resume_and_read_a_subscription() -> None:
    cancel = respx.delete(f"{API}/subscriptions/1").mock(return_value=httpx.Response(
        200, json=subscription_response("cancelled", cancelled=True,
                                        ends_at="2026-12-02T09:00:00.000000Z")))
    resume = respx.patch(f"{API}/subscriptions/1").mock(return_value=httpx.Response(
        200, json=subscription_response("active", cancelled=False, ends_at=None)))
    read = respx.get(f"{API}/subscriptions/1").mock(return_value=httpx.Response(
        200, json=subscription_response("active", cancelled=False, ends_at=None)))
    provider = LemonSqueezyProvider(ls_settings())
    cancelled = await provider.cancel_subscription("1")
    assert (cancelled["status"], cancelled["ends_at"]) == ("cancelled", "2026-12-02T09:00:00.000000Z")
    assert cancel.calls.last.request.content == b""
    resumed = await provider.resume_subscription("1")
    assert resumed["status"] == "active"
    assert json.loads(resume.calls.last.request.content) == {
        "data": {"type": "subscriptions", "id": "1", "attributes": {"cancelled": False}}}
    current = await provider.get_subscription("1")
    assert current["urls"]["customer_portal"].startswith("https://tutorapp.lemonsqueezy.com/billing")
    assert read.called


@respx.mock
@pytest.mark.parametrize("answer", [
    httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": [{"status": "429"}]}),
    httpx.Response(500, text="oops"),
    httpx.Response(503, text="unavailable"),
    httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"),
])
async def test_rate_limits_server_errors_and_network_failures_are_retryable(answer) -> None:
    if isinstance(answer, Exception):
        respx.delete(f"{API}/subscriptions/1").mock(side_effect=answer)
    else:
        respx.delete(f"{API}/subscriptions/1").mock(return_value=answer)
    with pytest.raises(PaymentsError) as raised:
        await LemonSqueezyProvider(ls_settings()).cancel_subscription("1")
    assert not isinstance(raised.value, PaymentsRejected)
    if isinstance(answer, httpx.Response) and answer.status_code == 429:
        assert raised.value.retry_after == 7.0


@respx.mock
@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_client_errors_are_final(status: int) -> None:
    respx.post(f"{API}/checkouts").mock(return_value=httpx.Response(status, json={
        "jsonapi": {"version": "1.0"},
        "errors": [{"detail": "The variant field is required.", "status": str(status),
                    "title": "Unprocessable Entity",
                    "source": {"pointer": "/data/relationships/variant"}}]}))
    with pytest.raises(PaymentsRejected) as raised:
        await LemonSqueezyProvider(ls_settings()).create_checkout(
            CheckoutRequest(variant_id="1", email=None, name=None, custom={}))
    assert raised.value.status == status
    assert "The variant field is required." in str(raised.value)


def test_signature_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"meta":{"event_name":"order_created"},"data":{"type":"orders","id":"1"}}'
    # echo -n "$body" | openssl dgst -sha256 -hmac "whsec-0123456789"
    import hashlib
    import hmac

    expected = hmac.new(b"whsec-0123456789", body, hashlib.sha256).hexdigest()
    assert signature("whsec-0123456789", body) == expected and len(expected) == 64
    assert signature_is_valid("whsec-0123456789", body, expected)
    assert not signature_is_valid("whsec-0123456789", body + b" ", expected)
    assert not signature_is_valid("whsec-0123456789", body, expected.upper()[:-1])
    assert not signature_is_valid("whsec-0123456789", body, None)


def test_lemonsqueezy_needs_its_keys() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="TUTORAPP_LEMONSQUEEZY_API_KEY"):
        make_settings("sqlite:///:memory:", payments_provider="lemonsqueezy")


def _page(number: int, last: int, items: list[tuple[str, str]]) -> dict:
    return {
        "meta": {"page": {"currentPage": number, "from": 1, "lastPage": last, "perPage": 100,
                          "to": len(items), "total": 250}},
        "jsonapi": {"version": "1.0"},
        "links": {"first": f"{API}/orders?page[number]=1", "last": f"{API}/orders?page[number]={last}"},
        "data": [{"type": "orders", "id": oid,
                  "attributes": {"status": "paid", "created_at": at, "updated_at": at}}
                 for oid, at in items],
    }


@respx.mock
async def test_list_recent_pages_through_the_store_until_nothing_is_recent() -> None:
    from datetime import UTC, datetime

    route = respx.get(f"{API}/orders").mock(side_effect=[
        httpx.Response(200, json=_page(1, 3, [("3", "2026-11-05T10:00:00.000000Z"),
                                              ("2", "2026-11-04T10:00:00.000000Z")])),
        httpx.Response(200, json=_page(2, 3, [("1", "2026-10-01T10:00:00.000000Z")])),
    ])
    found = await LemonSqueezyProvider(ls_settings()).list_recent(
        "orders", since=datetime(2026, 11, 1, tzinfo=UTC))
    assert [order_id for order_id, _ in found] == ["3", "2"]
    # page 2 had nothing that recent: page 3 was never asked for
    assert [dict(call.request.url.params) for call in route.calls] == [
        {"filter[store_id]": "4321", "page[size]": "100", "page[number]": str(n)} for n in (1, 2)]
    assert route.calls.last.request.headers["authorization"] == "Bearer test-api-key"


@respx.mock
async def test_a_checkout_for_a_held_booking_expires_with_the_hold() -> None:
    from datetime import UTC, datetime

    route = respx.post(f"{API}/checkouts").mock(
        return_value=httpx.Response(201, json=checkout_response()))
    await LemonSqueezyProvider(ls_settings()).create_checkout(CheckoutRequest(
        variant_id="1003", email=None, name=None, custom={"booking_ids": "b-1,b-2"},
        expires_at=datetime(2026, 11, 2, 9, 15, tzinfo=UTC)))
    sent = json.loads(route.calls.last.request.content)["data"]["attributes"]
    assert sent["expires_at"] == "2026-11-02T09:15:00.000000Z"
    assert sent["checkout_data"]["custom"] == {"booking_ids": "b-1,b-2"}
