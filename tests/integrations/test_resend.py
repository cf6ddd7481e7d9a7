"""The Resend provider speaks Resend's documented HTTP API (checked against a fake
that answers as the documentation describes)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import respx

from tests.conftest import make_settings
from tests.integrations.resend_fake import API_KEY, BASE_URL, RESEND_SETTINGS, FakeResend
from tutorapp.integrations.email.base import EmailDeliveryError, EmailRejected, OutgoingEmail
from tutorapp.integrations.email.resend import ResendProvider, retry_after_seconds


def email(n: int = 1, **overrides: object) -> OutgoingEmail:
    values = {
        "id": f"00000000-0000-0000-0000-00000000000{n}", "sender": "TutorApp <hello@tutorapp.test>",
        "to": f"learner{n}@example.org", "subject": f"Reminder {n}",
        "html": "<p>Lesson tomorrow</p>", "text": "Lesson tomorrow", "attachments": [],
    }
    return OutgoingEmail(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
def fake() -> FakeResend:
    fake = FakeResend()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        yield fake


@pytest.fixture
def resend() -> ResendProvider:
    return ResendProvider(make_settings("sqlite:///unused.db", **RESEND_SETTINGS))


async def test_send_posts_the_documented_request(fake: FakeResend, resend: ResendProvider) -> None:
    attachment = {"filename": "lesson.ics", "content_type": "text/calendar",
                  "content": "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"}
    email_id = await resend.send(email(attachments=[attachment]))
    [request] = fake.requests
    assert request.url == f"{BASE_URL}/emails"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["idempotency-key"] == "email/00000000-0000-0000-0000-000000000001"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "from": "TutorApp <hello@tutorapp.test>", "to": ["learner1@example.org"],
        "subject": "Reminder 1", "html": "<p>Lesson tomorrow</p>", "text": "Lesson tomorrow",
        "attachments": [{
            "filename": "lesson.ics", "content_type": "text/calendar",
            "content": base64.b64encode(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").decode(),
        }],
    }
    assert email_id == fake.sent[0]["id"]


async def test_a_repeated_send_is_answered_from_the_idempotency_key(
    fake: FakeResend, resend: ResendProvider
) -> None:
    first = await resend.send(email())
    second = await resend.send(email())
    assert first == second
    assert len(fake.requests) == 2 and len(fake.sent) == 1


async def test_the_same_key_with_another_payload_is_a_final_409(
    fake: FakeResend, resend: ResendProvider
) -> None:
    await resend.send(email())
    with pytest.raises(EmailRejected, match="409 invalid_idempotent_request"):
        await resend.send(email(subject="Changed"))


async def test_a_concurrent_request_with_the_same_key_is_retryable(
    fake: FakeResend, resend: ResendProvider
) -> None:
    fake.fail_next(409, "concurrent_idempotent_requests", "Same idempotency key in progress.")
    with pytest.raises(EmailDeliveryError, match="concurrent_idempotent_requests"):
        await resend.send(email())


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "1", "ratelimit-reset": "3"}, 1.0),
    ({"ratelimit-reset": "2"}, 2.0),
    ({}, None),
])
async def test_a_rate_limit_is_retryable_after_the_advertised_wait(
    fake: FakeResend, resend: ResendProvider, headers: dict[str, str], expected: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("tutorapp.integrations.email.resend.asyncio.sleep", no_sleep)
    fake.fail_next(429, "rate_limit_exceeded", "Too many requests.",
                   headers={"ratelimit-limit": "2", "ratelimit-remaining": "0", **headers})
    with pytest.raises(EmailDeliveryError) as caught:
        await resend.send(email())
    assert caught.value.retry_after == expected
    assert waits == ([] if expected is None else [expected])
    assert fake.sent == []
    assert await resend.send(email())  # the next attempt goes through


@pytest.mark.parametrize(("status", "name"), [
    (400, "invalid_idempotency_key"), (401, "missing_api_key"), (403, "invalid_from_address"),
    (422, "validation_error"),
])
async def test_client_errors_are_final(
    fake: FakeResend, resend: ResendProvider, status: int, name: str
) -> None:
    fake.fail_next(status, name)
    with pytest.raises(EmailRejected, match=f"{status} {name}"):
        await resend.send(email())


async def test_server_errors_and_network_failures_are_retryable(
    fake: FakeResend, resend: ResendProvider
) -> None:
    fake.fail_next(500, "internal_server_error")
    with pytest.raises(EmailDeliveryError, match="500"):
        await resend.send(email())
    fake.script.append(httpx.ConnectTimeout("timed out"))
    with pytest.raises(EmailDeliveryError, match="unreachable"):
        await resend.send(email())


async def test_batch_sends_many_in_one_request(fake: FakeResend, resend: ResendProvider) -> None:
    ids = await resend.send_batch([email(1), email(2), email(3)])
    [request] = fake.requests
    assert request.url == f"{BASE_URL}/emails/batch"
    assert request.headers["idempotency-key"].startswith("batch/")
    assert [item["to"] for item in json.loads(request.content)] == [
        ["learner1@example.org"], ["learner2@example.org"], ["learner3@example.org"]]
    assert ids == [sent["id"] for sent in fake.sent]
    assert await resend.send_batch([email(1), email(2), email(3)]) == ids  # replayed
    assert len(fake.sent) == 3
    with pytest.raises(ValueError, match="at most 100 emails per batch"):
        await resend.send_batch([email(1)] * 101)


def test_retry_after_reads_the_documented_headers() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"retry-after": "5"})) == 5.0
    assert retry_after_seconds(httpx.Response(429, headers={"ratelimit-reset": "7"})) == 7.0
    assert retry_after_seconds(httpx.Response(429, headers={"retry-after": "soon"})) is None
