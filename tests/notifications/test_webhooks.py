"""Resend webhooks, signed the Svix way, go to the one webhook inbox and feed the
suppression list once per event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from svix.webhooks import Webhook

from tests.conftest import make_settings
from tests.jobs.conftest import Worker
from tutorapp.core.db import Database
from tutorapp.notifications.models import EmailSuppression, SuppressionReason
from tutorapp.webhooks.models import InboxEvent

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def bounce(to: str = "gone@example.org", kind: str = "email.bounced") -> dict:
    return {
        "type": kind,
        "created_at": "2026-11-25T15:00:00.000Z",
        "data": {
            "created_at": "2026-11-25T14:59:58.000Z",
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "TutorApp <hello@tutorapp.test>",
            "to": [to],
            "subject": "Welcome to TutorApp",
            "bounce": {"message": "The recipient's mail server permanently rejected the email.",
                       "subType": "Suppressed", "type": "Permanent"},
        },
    }


def signed(payload: dict, *, msg_id: str = "msg_2Lh9KRb0pzN4LePd3XiA", secret: str = SECRET,
           at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload)
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body)
    return body.encode(), {
        "svix-id": msg_id, "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": signature, "content-type": "application/json",
    }


@pytest.fixture
def with_secret(app: FastAPI, database_url: str) -> None:
    app.state.settings = make_settings(database_url, resend_webhook_secret=SECRET)


async def inbox_run(db: Database, msg_id: str) -> str:
    """The job run applying the Resend event stored under this Svix message id."""
    async with db.session() as session:
        event = await session.scalar(select(InboxEvent).where(
            InboxEvent.provider == "resend", InboxEvent.dedupe_key == msg_id))
    assert event is not None and event.event_name.startswith("email.")
    return f"webhooks.process:{event.id}:0"


async def suppressions(db: Database) -> list[tuple[str, SuppressionReason, str | None]]:
    async with db.session() as session:
        rows = (await session.scalars(select(EmailSuppression).order_by(EmailSuppression.address)
                                      )).all()
    return [(r.address, r.reason, r.source_event_id) for r in rows]


@pytest.mark.usefixtures("with_secret")
async def test_a_bounce_suppresses_the_address_once(
    client: httpx.AsyncClient, running: Worker, db: Database
) -> None:
    body, headers = signed(bounce("Gone@Example.org"))
    first = await client.post("/webhooks/resend", content=body, headers=headers)
    again = await client.post("/webhooks/resend", content=body, headers=headers)  # redelivery
    assert first.status_code == again.status_code == 200
    assert first.json() == {"received": True, "handled": True, "duplicate": False}
    assert again.json() == {"received": True, "handled": True, "duplicate": True}
    assert await running.result(await inbox_run(db, "msg_2Lh9KRb0pzN4LePd3XiA")) == "suppressed 1"
    assert await suppressions(db) == [
        ("gone@example.org", SuppressionReason.bounced, "msg_2Lh9KRb0pzN4LePd3XiA")
    ]
    async with db.session() as session:
        # one inbox for every provider: the Resend event is stored where Lemon Squeezy's are
        assert await session.scalar(select(func.count()).select_from(InboxEvent)) == 1


@pytest.mark.usefixtures("with_secret")
async def test_a_complaint_suppresses_the_address(
    client: httpx.AsyncClient, running: Worker, db: Database
) -> None:
    body, headers = signed(bounce("angry@example.org", "email.complained"), msg_id="msg_c1")
    assert (await client.post("/webhooks/resend", content=body, headers=headers)).status_code == 200
    assert await running.result(await inbox_run(db, "msg_c1")) == "suppressed 1"
    assert await suppressions(db) == [("angry@example.org", SuppressionReason.complained, "msg_c1")]


@pytest.mark.usefixtures("with_secret")
async def test_other_event_types_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, db: Database
) -> None:
    body, headers = signed(bounce(kind="email.delivered"), msg_id="msg_d1")
    response = await client.post("/webhooks/resend", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"received": True, "handled": False}
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(InboxEvent)) == 0


@pytest.mark.usefixtures("with_secret")
@pytest.mark.parametrize("tamper", ["secret", "body", "stale", "future", "missing"])
async def test_unverifiable_deliveries_are_refused(
    client: httpx.AsyncClient, db: Database, tamper: str
) -> None:
    now = datetime.now(UTC)
    body, headers = signed(
        bounce(),
        secret="whsec_" + "A" * 32 if tamper == "secret" else SECRET,
        at=now - timedelta(minutes=6) if tamper == "stale"
        else now + timedelta(minutes=6) if tamper == "future" else now,
    )
    if tamper == "body":
        body = body.replace(b"gone@", b"else@")
    if tamper == "missing":
        del headers["svix-signature"]
    response = await client.post("/webhooks/resend", content=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/invalid-webhook-signature"
    assert await suppressions(db) == []


async def test_without_a_secret_the_endpoint_is_unavailable(client: httpx.AsyncClient) -> None:
    body, headers = signed(bounce())
    response = await client.post("/webhooks/resend", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/webhook-not-configured"
