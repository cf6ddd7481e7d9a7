"""The one webhook inbox: attempts, backoff, dead letters and the admin's retry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from tests.accounts.test_browser_sessions import HTML, browser_login, csrf_of
from tests.billing.conftest import deliver, order_event, process
from tests.factories import make_user, totp_code
from tests.scheduling.conftest import Market, market  # noqa: F401 - fixture
from tutorapp.auth.roles import Role
from tutorapp.core.audit import AuditEvent
from tutorapp.core.db import Database
from tutorapp.webhooks import service as inbox
from tutorapp.webhooks.models import InboxEvent

T = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_enqueue(monkeypatch) -> None:
    from tutorapp.jobs import queue

    async def nothing(*args, **kwargs) -> str:
        return "not started"

    monkeypatch.setattr(queue, "enqueue", nothing)


@pytest.fixture
def flaky() -> list[str]:
    """A provider whose handler fails every time (say, a bug waiting for a fix)."""
    calls: list[str] = []

    async def apply(session, settings, event) -> str:
        calls.append(event.event_name)
        raise RuntimeError("the handler broke")

    inbox.HANDLERS["flaky"] = apply
    yield calls
    del inbox.HANDLERS["flaky"]


async def get(db: Database, event_id: object) -> InboxEvent:
    async with db.session() as session:
        event = await session.get(InboxEvent, uuid.UUID(str(event_id)))
        assert event is not None
        return event


async def test_failed_attempts_back_off_then_the_event_is_dead(
        db: Database, flaky: list[str]) -> None:
    db.settings.webhook_max_attempts = 3
    async with db.unit_of_work() as session:
        event_id, new = await inbox.store(session, provider="flaky", dedupe_key="evt_1",
                                          event_name="thing.happened", resource_type="thing",
                                          resource_id="1", payload={"a": 1})
    assert new
    async with db.unit_of_work() as session:
        assert await inbox.process(session, db.settings, event_id, now=T) == "failed"
    event = await get(db, event_id)
    assert (event.status, event.attempts, event.next_attempt_at) == ("pending", 1,
                                                                    T + timedelta(seconds=30))
    assert event.last_error == "RuntimeError: the handler broke"
    async with db.session() as session:  # not due before its backoff ran out
        assert await inbox.due(session, now=T + timedelta(seconds=29)) == []
        assert await inbox.due(session, now=T + timedelta(seconds=30)) == [
            (event_id, f"{event_id}:1")]
    async with db.unit_of_work() as session:
        assert await inbox.process(session, db.settings, event_id,
                                   now=T + timedelta(seconds=30)) == "failed"
    assert (await get(db, event_id)).next_attempt_at == T + timedelta(seconds=90)  # doubled
    async with db.unit_of_work() as session:
        assert await inbox.process(session, db.settings, event_id,
                                   now=T + timedelta(seconds=90)) == "dead"
    event = await get(db, event_id)
    assert (event.status, event.attempts, event.next_attempt_at) == ("dead", 3, None)
    assert flaky == ["thing.happened"] * 3
    async with db.session() as session:  # never attempted again by itself
        assert await inbox.due(session, now=T + timedelta(days=30)) == []
        audit = await session.scalar(select(AuditEvent).where(
            AuditEvent.action == "webhook.dead_lettered"))
    assert audit is not None and audit.data["attempts"] == 3
    assert [inbox.backoff(n).total_seconds() for n in (1, 2, 3, 8, 9, 20)] == [
        30, 60, 120, 3600, 3600, 3600]


async def test_an_event_that_can_never_apply_is_dead_at_once_and_an_admin_retries_it(
        client: httpx.AsyncClient, db: Database, settings, market: Market) -> None:
    parent = await make_user(db, role=Role.parent)
    payload = order_event("order_created", user_id=parent.user.id)
    payload["meta"]["custom_data"] = "user_id=42"  # not an object: it never reads better
    event_id = (await deliver(client, settings, payload)).json()["id"]
    assert await process(db, event_id) == "dead"
    assert await process(db, event_id) == "skip: dead"
    event = await get(db, event_id)
    assert (event.status, event.attempts) == ("dead", 1)
    assert event.last_error == "unprocessable: meta.custom_data is not an object"
    async with db.session() as session:
        assert await inbox.due(session, now=T + timedelta(days=365)) == []
    admin = market.admin.headers
    listed = await client.get("/api/v1/admin/webhooks", params={"failing": "true"}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert [(e["id"], e["provider"], e["status"], e["attempts"], e["last_error"])
            for e in listed.json()] == [
        (event_id, "lemonsqueezy", "dead", 1, "unprocessable: meta.custom_data is not an object")]
    retried = await client.post(f"/api/v1/admin/webhooks/{event_id}/retry", headers=admin)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
    async with db.session() as session:
        assert [e for e, _ in await inbox.due(session)] == [uuid.UUID(event_id)]
        audit = await session.scalar(select(AuditEvent).where(AuditEvent.action == "webhook.retried"))
    assert audit is not None and audit.actor_id == market.admin.id
    assert await process(db, event_id) == "dead"  # still unreadable: dead again
    missing = await client.post(f"/api/v1/admin/webhooks/{uuid.uuid4()}/retry", headers=admin)
    assert missing.status_code == 404


async def test_the_back_office_lists_dead_events_with_a_retry_button(
        client: httpx.AsyncClient, db: Database, settings, market: Market) -> None:
    parent = await make_user(db, role=Role.parent)
    payload = order_event("order_created", user_id=parent.user.id)
    payload["meta"]["custom_data"] = ["not", "an", "object"]
    event_id = (await deliver(client, settings, payload)).json()["id"]
    await process(db, event_id)
    admin = await make_user(db, role=Role.admin, totp=True)
    await browser_login(client, admin.email)
    mfa = await client.get("/app/mfa", headers=HTML)
    await client.post("/app/mfa", headers=HTML, data={
        "code": totp_code(admin), "next": "/admin", "csrf_token": csrf_of(mfa)})
    page = await client.get("/admin/webhooks", headers=HTML)
    assert page.status_code == 200, page.text
    assert "meta.custom_data is not an object" in page.text
    assert f'action="/admin/webhooks/{event_id}/retry"' in page.text
    done = await client.post(f"/admin/webhooks/{event_id}/retry", headers=HTML,
                             data={"csrf_token": csrf_of(page)})
    assert done.status_code == 303 and done.headers["location"] == "/admin/webhooks?retried=1"
    assert (await get(db, event_id)).status == "pending"


async def test_an_invoice_deferred_for_its_subscription_is_due_as_soon_as_it_arrives(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    from tests.billing.conftest import invoice_event, subscription_event
    from tutorapp.core.time import utcnow

    parent = await make_user(db, role=Role.parent)
    invoice_id = (await deliver(client, settings, invoice_event(
        "subscription_payment_success", user_id=parent.user.id))).json()["id"]
    assert await process(db, invoice_id) == "deferred"
    waiting = await get(db, invoice_id)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert waiting.last_error == "deferred: its subscription has not been seen yet"
    async with db.session() as session:  # waiting for its backoff
        assert invoice_id not in [str(e) for e, _ in await inbox.due(session, now=utcnow())]
    sub_id = (await deliver(client, settings, subscription_event(
        "subscription_created", user_id=parent.user.id))).json()["id"]
    assert await process(db, sub_id) == "subscription active"
    async with db.session() as session:  # due now, not after the backoff
        assert invoice_id in [str(e) for e, _ in await inbox.due(session, now=utcnow())]
    assert await process(db, invoice_id) == "period paid: credits granted"


async def test_a_signed_event_with_nul_and_overlong_fields_is_stored(
        client: httpx.AsyncClient, db: Database, settings) -> None:
    parent = await make_user(db, role=Role.parent)
    payload = order_event("order_created", user_id=parent.user.id)
    payload["data"]["id"] = "9" * 100
    payload["data"]["attributes"]["user_name"] = "Pat\u0000Parent"
    response = await deliver(client, settings, payload)
    assert response.status_code == 200, response.text
    event = await get(db, response.json()["id"])
    assert event.resource_id == "9" * 64
    assert event.payload["data"]["attributes"]["user_name"] == "Pat\ufffdParent"  # core.fields.storable_json
